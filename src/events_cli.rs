//! `gatehouse events`: the security event log, for operators.

use gatehouse_core::events::{Event, EventFilter};
use gatehouse_core::Authority;

#[derive(clap::Args)]
pub struct EventsArgs {
    /// Only events done by or to this account (also after it was deleted)
    #[arg(long, value_name = "LOGIN")]
    user: Option<String>,
    /// Only events about this application
    #[arg(long, value_name = "CLIENT_ID")]
    client: Option<String>,
    /// Only events this recent: a number and a unit, s, m, h or d (e.g. 24h, 7d)
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    since: Option<i64>,
    /// At most this many events, newest first
    #[arg(long, default_value_t = 1000)]
    limit: i64,
    /// One JSON object per line (JSON lines), for tools
    #[arg(long)]
    json: bool,
}

/// An age such as `90s`, `30m`, `24h` or `7d`, in seconds.
fn parse_age(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number.parse().map_err(|_| format!("{text:?} is not an age such as 24h or 7d"))?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" | "" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    n.checked_mul(unit).ok_or_else(|| format!("{text:?} is too long ago"))
}

pub async fn run(auth: &Authority, args: EventsArgs) -> Result<(), Box<dyn std::error::Error>> {
    let filter = EventFilter {
        user_id: None,
        login: args.user,
        client_id: args.client,
        since: args.since.map(|age| auth.now() - age),
        limit: args.limit.max(1),
    };
    let events = auth.store.list_events(&filter).await?;
    for e in &events {
        if args.json {
            println!("{}", serde_json::to_string(&JsonEvent { time: rfc3339(e.at), event: e })?);
        } else {
            println!("{}", line(e));
        }
    }
    if events.is_empty() && !args.json {
        eprintln!("no events");
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct JsonEvent<'a> {
    time: String,
    #[serde(flatten)]
    event: &'a Event,
}

fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| at.to_string())
}

/// One event on one line: time, kind, then only the fields it has.
fn line(e: &Event) -> String {
    let mut out = format!("{}  {}", rfc3339(e.at), e.kind);
    let fields = [
        ("by", e.actor_login.as_deref()),
        ("user", e.subject_login.as_deref().or(e.subject_user_id.as_deref())),
        ("client", e.client_id.as_deref()),
        ("from", e.address.as_deref()),
        ("detail", e.detail.as_deref()),
        ("agent", e.user_agent.as_deref()),
    ];
    for (name, value) in fields {
        if let Some(v) = value {
            out.push_str(&format!("  {name}={v:?}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_with_units() {
        assert_eq!(parse_age("90s"), Ok(90));
        assert_eq!(parse_age("30m"), Ok(1800));
        assert_eq!(parse_age("24h"), Ok(86_400));
        assert_eq!(parse_age("7d"), Ok(604_800));
        assert_eq!(parse_age("2"), Ok(7200));
        assert!(parse_age("1w").is_err());
        assert!(parse_age("h").is_err());
        assert!(parse_age("99999999999999999d").is_err());
    }

    #[test]
    fn times_are_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }
}
