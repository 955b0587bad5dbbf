//! The core's storage roles, each implemented once for both backends.

mod accounts;
mod clients;
mod grants;
mod platform;
mod sessions;
mod two_factor;
mod tokens;
mod upkeep;
