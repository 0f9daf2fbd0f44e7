//! The null server: the Postfix policy protocol with no decision behind it. It parses each
//! request with the same parser `quench serve` uses and answers `DUNNO`: the floor any policy
//! service pays for the protocol and the sockets.

use anyhow::{Context, Result};
use quench_postfix_policy::{Limits, RequestReader};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Serve `DUNNO` on `listen` until SIGTERM or SIGINT.
pub fn run(listen: SocketAddr) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the null server's runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the null server to {listen}"))?;
        println!(
            "quench: null server listening on {}",
            listener.local_addr()?
        );
        let shutdown = crate::serve::shutdown_signal();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return anyhow::Ok(ExitCode::SUCCESS),
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(answer_dunno(stream));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        }
    })
}

/// How long the null server waits after an accept error (out of file descriptors) before
/// accepting again, as `quench serve` does.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Read requests from one connection, with the same parser and limits `quench serve` uses,
/// and answer each with `DUNNO`.
async fn answer_dunno(stream: TcpStream) {
    let (read, mut write) = stream.into_split();
    let mut reader = RequestReader::with_limits(BufReader::new(read), Limits::default());
    while let Ok(Some(_)) = reader.read_request().await {
        if write.write_all(b"action=DUNNO\n\n").await.is_err() {
            return;
        }
    }
}
