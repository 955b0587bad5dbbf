//! The core's storage roles, each implemented once for both backends.

mod accounts;
mod clients;
mod events;
mod grants;
mod platform;
mod tokens;
mod upkeep;
