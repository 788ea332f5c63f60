//! The `moto_server` (Cognito and SQS emulator) shared by all tests of one process.
//!
//! It is started on first use on a port the kernel picks (`-p 0`; moto prints the port it
//! bound), so parallel test processes never race for a port. Tests isolate themselves by
//! creating their own pool and queues. The server dies with the test process: it is
//! spawned from a thread that lives as long as the server, with `PR_SET_PDEATHSIG`, so the
//! kernel kills it when that thread (and so the process) goes away, even on a crash or a
//! nextest timeout kill.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};

/// How long moto may take to import and bind (Python start-up on a loaded machine).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

static MOTO: OnceLock<Result<String, String>> = OnceLock::new();

/// The URL (`http://127.0.0.1:<port>`) of this process's moto server, starting it on first
/// call. The program is `$MOTO_SERVER` when set, otherwise `<workspace>/.venv/bin/moto_server`.
pub async fn moto_endpoint() -> anyhow::Result<String> {
    let shared =
        tokio::task::spawn_blocking(|| MOTO.get_or_init(|| start().map_err(|e| format!("{e:#}"))))
            .await
            .context("waiting for moto_server to start")?;
    shared.clone().map_err(|e| anyhow!(e))
}

/// Where the moto_server program is, or an error saying how to install it.
pub fn moto_program() -> anyhow::Result<PathBuf> {
    let program = match std::env::var_os("MOTO_SERVER") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => crate::workspace_root().join(".venv/bin/moto_server"),
    };
    if !program.is_file() {
        anyhow::bail!(
            "moto_server not found at {}: run ./scripts/test.sh once (it creates .venv with the pinned moto from requirements.txt) or set MOTO_SERVER",
            program.display()
        );
    }
    Ok(program)
}

fn start() -> anyhow::Result<String> {
    let program = moto_program()?;
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("testbed-moto".into())
        .spawn(move || keep(program, ready_tx))
        .context("spawning the thread that owns moto_server")?;
    match ready_rx.recv_timeout(STARTUP_TIMEOUT) {
        Ok(result) => result,
        Err(_) => {
            anyhow::bail!("moto_server did not report a listening port within {STARTUP_TIMEOUT:?}")
        }
    }
}

/// Runs on the owning thread for the whole life of the server: the parent-death signal is
/// bound to the thread that forked, so this thread must outlive the server.
fn keep(program: PathBuf, ready: mpsc::Sender<anyhow::Result<String>>) {
    let mut child = match spawn(&program) {
        Ok(child) => child,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let Some(stderr) = child.stderr.take() else {
        let _ = ready.send(Err(anyhow!("moto_server stderr was not captured")));
        return;
    };
    let mut lines = BufReader::new(stderr).lines();
    let mut startup_output = Vec::new();
    let mut endpoint = None;
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        if let Some(url) = listening_url(&line) {
            endpoint = Some(url);
            break;
        }
        startup_output.push(line);
    }
    match endpoint {
        Some(url) => {
            let _ = ready.send(Ok(url));
            // moto logs every request on stderr; keep draining it so it never blocks.
            for _ in lines {}
            let _ = child.wait();
        }
        None => {
            let status = child
                .wait()
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            let _ = ready.send(Err(anyhow!(
                "moto_server ({}) exited ({status}) before listening:\n{}",
                program.display(),
                startup_output.join("\n")
            )));
        }
    }
}

fn spawn(program: &PathBuf) -> anyhow::Result<Child> {
    let mut command = Command::new(program);
    command
        .args(["-H", "127.0.0.1", "-p", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    die_with_parent(&mut command);
    command
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

#[cfg(target_os = "linux")]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    let parent = std::process::id();
    // SAFETY: prctl and getppid are async-signal-safe and touch no memory of the parent.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the signal was armed: then nobody will.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other(
                    "the test process exited while starting moto_server",
                ));
            }
            Ok(())
        });
    }
}

/// Without a parent-death signal the server outlives a crashed test process; other
/// platforms are not used to run the suite.
#[cfg(not(target_os = "linux"))]
fn die_with_parent(_command: &mut Command) {}

/// Werkzeug's start-up line ` * Running on http://127.0.0.1:45973` names the bound port.
fn listening_url(line: &str) -> Option<String> {
    let rest = line.split("Running on ").nth(1)?;
    let url = rest.split_whitespace().next()?;
    let port = url.strip_prefix("http://127.0.0.1:")?;
    port.parse::<u16>().ok()?;
    Some(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::listening_url;

    #[test]
    fn finds_the_port_werkzeug_bound() {
        assert_eq!(
            listening_url(" * Running on http://127.0.0.1:45973").as_deref(),
            Some("http://127.0.0.1:45973")
        );
        assert_eq!(
            listening_url("\u{1b}[33mPress CTRL+C to quit\u{1b}[0m"),
            None
        );
        assert_eq!(
            listening_url(" * Running on http://127.0.0.1:notaport"),
            None
        );
    }
}
