//! Black-box tests: the real server on a random loopback port with a fresh SQLite file,
//! driven over HTTP by reqwest (as a browser and as a client) and by the `oauth2` crate.

mod binary;
mod common;
mod smtp;

mod account_admin;
mod api;
mod app_names;
mod backup;
mod authorize_errors;
mod budgets;
mod browser;
mod browser_two_factor;
mod browser_recovery;
mod cli;
mod cli_token;
mod client_lib;
mod client_auth;
mod code_flow;
mod coherence;
mod connections;
mod consent;
mod crash;
mod device;
mod faults;
mod dialects;
mod events;
mod hardening;
mod oidc;
mod ops;
mod pages;
mod passwords;
mod implicit_and_app_tokens;
mod jwt_access_tokens;
mod mail;
mod accounts;
mod user_cli;
mod pkce;
mod refresh;
mod rfc9700;
mod scale_out;
mod token_endpoints;
mod twitch_client;
mod two_factor;
