//! `sync-user`: re-reads the named users from Cognito now and writes them to the mirror the
//! way the daemon writes a user an event names ([`crate::daemon::user_sync`]), with the
//! daemon's reader, quota limits and retries; `dry_run` compares without writing.

use std::io::BufRead;

use anyhow::{Context, bail};

use crate::cognito::RetryPolicy;
use crate::config::Settings;
use crate::daemon::user_sync::{UserSyncReport, sync_users};
use crate::daemon::{COGNITO_RETRIES, HASURA_RETRIES};
use crate::hasura::HasuraClient;

/// What `sync-user` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct SyncUserRequest {
    /// Subs or usernames, as given on the command line.
    pub identifiers: Vec<String>,
    /// Also read identifiers from stdin, one a line.
    pub stdin: bool,
    pub dry_run: bool,
}

/// Syncs the named users; the report says what became of each.
///
/// # Errors
///
/// No identifier given, stdin unreadable, missing settings, or a mirror that cannot be read.
/// A user that cannot be read or written is a line of the report, not an error.
pub async fn run(settings: &Settings, request: SyncUserRequest) -> anyhow::Result<UserSyncReport> {
    let mut identifiers = request.identifiers;
    if request.stdin {
        identifiers.extend(read_identifiers(std::io::stdin().lock())?);
    }
    if identifiers.is_empty() {
        bail!("name at least one user: a sub or a username, as arguments or with --stdin");
    }
    let hasura_settings = settings.require_hasura()?;
    let hasura = HasuraClient::with_retries(
        &hasura_settings,
        hasura_settings.retries.min(HASURA_RETRIES),
    )?;
    let sdk = super::aws_config(settings).await;
    let quotas = super::quota_settings(settings, None)?;
    let reader =
        super::cognito_reader(&sdk, settings, quotas, RetryPolicy::Capped(COGNITO_RETRIES))?;
    sync_users(reader, hasura, &identifiers, request.dry_run).await
}

/// One identifier a line, trimmed; blank lines and `#` comments are skipped.
fn read_identifiers(input: impl BufRead) -> anyhow::Result<Vec<String>> {
    let mut identifiers = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.with_context(|| format!("reading line {} of stdin", n + 1))?;
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            identifiers.push(line.to_owned());
        }
    }
    Ok(identifiers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdin_lists_one_identifier_a_line() {
        let input = "alice\n\n  5f1c7d9e-2a4b-4c8d-9e0f-1a2b3c4d5e6f  \n# a comment\nbob\r\n";
        assert_eq!(
            read_identifiers(input.as_bytes()).unwrap(),
            vec!["alice", "5f1c7d9e-2a4b-4c8d-9e0f-1a2b3c4d5e6f", "bob"]
        );
    }
}
