//! A process of the binary under test that runs beside the test (a daemon, a scanner): its
//! stderr is kept for assertions and failure messages, and it is killed when dropped.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail, ensure};
use testbed::TestBed;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use super::command;

/// One process of the binary under test, killed when dropped; what it writes to stderr is
/// kept for assertions and failure messages.
pub struct Process {
    name: String,
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Process {
    pub fn spawn(name: &str, mut cmd: tokio::process::Command) -> anyhow::Result<Process> {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pipe = child.stderr.take().context("no stderr pipe")?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Ok(Process {
            name: name.to_owned(),
            child,
            stderr,
        })
    }

    /// Fails, with the end of its stderr, if the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}):\n{}", self.name, self.tail());
        }
        Ok(())
    }

    /// Waits (bounded) for the process to exit.
    pub async fn exit(&mut self, bound: Duration) -> anyhow::Result<ExitStatus> {
        let status = tokio::time::timeout(bound, self.child.wait())
            .await
            .map_err(|_| anyhow!("{} still runs after {bound:?}:\n{}", self.name, self.tail()))??;
        // The pipe reader may still hold the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(status)
    }

    /// Waits (bounded) for the process to exit and fails unless it succeeded.
    pub async fn succeed(&mut self, bound: Duration) -> anyhow::Result<()> {
        let status = self.exit(bound).await?;
        ensure!(
            status.success(),
            "{} exited with {status}:\n{}",
            self.name,
            self.tail()
        );
        Ok(())
    }

    /// SIGTERM: the shutdown an orchestrator asks for; [`Process::exit`] waits for it.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let pid = self.child.id().context("the process has no pid")?;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        ensure!(status.success(), "kill -TERM {pid} failed");
        Ok(())
    }

    /// SIGKILL: no cleanup at all.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }

    /// The lines written to stderr so far.
    pub fn lines(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// The last lines of stderr, for failure messages.
    pub fn tail(&self) -> String {
        let lines = self.stderr.lock().unwrap_or_else(|e| e.into_inner());
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// The daemon on the bed's queue as `HOSTNAME` `name`, tuned for tests (short long-polls and
/// backoffs), with Cognito (and SQS) reached at `aws_endpoint`, the reconcile `schedule`,
/// and `extra` flags.
pub fn daemon_via(
    bed: &TestBed,
    aws_endpoint: &str,
    name: &str,
    schedule: &str,
    extra: &[&str],
) -> anyhow::Result<Process> {
    let mut cmd = command(bed, aws_endpoint, &bed.hasura.endpoint);
    cmd.env("HOSTNAME", name).args([
        "daemon",
        "--queue-url",
        &bed.queue_url,
        "--listen",
        "127.0.0.1:0",
        "--wait-time",
        "1",
        "--cognito-rps",
        "200",
        "--retry-backoff",
        "1",
        "--retry-backoff-max",
        "2",
        "--probe-interval",
        "1",
        "--reconcile-schedule",
        schedule,
    ]);
    cmd.args(extra);
    Process::spawn(name, cmd)
}
