//! `quench load`: a load generator speaking the Postfix policy protocol over loopback, and a
//! null server (`quench load --null-server`) that answers `DUNNO` without work, so one run can
//! compare `quench serve` with the protocol floor.
//!
//! The client runs on one thread (a current-thread runtime) so that on a small machine the
//! server under test keeps the other cores; it reports the CPU time each side used, so a
//! reader can tell whether the client or the server set the pace.

mod cpu;
mod null_server;
mod traffic;

use anyhow::{Context, Result, bail};
use clap::Args;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub use traffic::{Distribution, Traffic};

/// Flags of `quench load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Run the null server on `--listen` instead of generating load.
    #[arg(long)]
    null_server: bool,
    /// Where the null server listens.
    #[arg(long, default_value = "127.0.0.1:10050")]
    listen: SocketAddr,
    /// The policy service to load.
    #[arg(long, default_value = "127.0.0.1:10040")]
    target: SocketAddr,
    /// Concurrent connections (Postfix opens one per smtpd process).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Requests to send in all (one per recipient).
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// Distinct senders.
    #[arg(long, default_value_t = 10_000)]
    senders: u64,
    /// How senders are picked: uniform, or zipf (a few heavy senders, a long tail).
    #[arg(long, value_enum, default_value_t = Distribution::Uniform)]
    distribution: Distribution,
    /// Recipients per message (one request each, sharing the message's `instance`).
    #[arg(long, default_value_t = 3)]
    recipients_per_message: u32,
    /// Share of recipients outside the accepted domain, 0 to 1.
    #[arg(long, default_value_t = 0.5)]
    external_share: f64,
    /// Seed of the traffic generator: the same seed sends the same traffic.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// PID of the server, to report the CPU time it used during the run.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// What a load run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The address loaded.
    pub target: SocketAddr,
    /// Requests answered.
    pub requests: u64,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// Requests answered per second.
    pub requests_per_second: f64,
    /// Median latency, microseconds.
    pub p50_us: u64,
    /// 99th percentile latency, microseconds.
    pub p99_us: u64,
    /// Slowest request, microseconds.
    pub max_us: u64,
    /// Answers by action (`DUNNO`, `550 5.1.8`, ...: the action word or the reply code and
    /// enhanced status), and `error` for requests that got no answer.
    pub actions: std::collections::BTreeMap<String, u64>,
    /// CPU seconds the load generator used.
    pub client_cpu_seconds: f64,
    /// CPU seconds the server used, when `--server-pid` was given.
    pub server_cpu_seconds: Option<f64>,
}

/// Run `quench load`.
pub fn run(args: LoadArgs) -> Result<ExitCode> {
    if args.null_server {
        return null_server::run(args.listen);
    }
    let report = generate(&args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Generate the load `args` describe and measure it.
pub fn generate(args: &LoadArgs) -> Result<Report> {
    if args.connections == 0 || args.requests == 0 {
        bail!("--connections and --requests must be above 0");
    }
    if !(0.0..=1.0).contains(&args.external_share) {
        bail!("--external-share must be between 0 and 1");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the load generator's runtime")?;
    let server_before = args.server_pid.map(cpu::process_seconds).transpose()?;
    let client_before = cpu::own_seconds();
    let started = Instant::now();
    let per_connection = args.requests.div_ceil(args.connections as u64);
    let results = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for connection in 0..args.connections {
            let traffic = Traffic::new(
                args.seed.wrapping_add(connection as u64),
                args.senders,
                args.distribution,
                args.recipients_per_message,
                args.external_share,
            );
            let count = per_connection.min(args.requests - per_connection * connection as u64);
            tasks.spawn(drive(args.target, traffic, count, connection));
        }
        let mut results = Vec::new();
        while let Some(result) = tasks.join_next().await {
            results.push(result.context("a connection task failed")??);
        }
        anyhow::Ok(results)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let client_cpu_seconds = cpu::own_seconds() - client_before;
    let server_cpu_seconds = match (args.server_pid, server_before) {
        (Some(pid), Some(before)) => Some(cpu::process_seconds(pid)? - before),
        _ => None,
    };

    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut actions = std::collections::BTreeMap::new();
    for result in results {
        latency.add(&result.latency)?;
        for (action, count) in result.actions {
            *actions.entry(action).or_insert(0) += count;
        }
    }
    let requests = latency.len();
    Ok(Report {
        target: args.target,
        requests,
        seconds,
        requests_per_second: requests as f64 / seconds,
        p50_us: latency.value_at_quantile(0.5),
        p99_us: latency.value_at_quantile(0.99),
        max_us: latency.max(),
        actions,
        client_cpu_seconds,
        server_cpu_seconds,
    })
}

/// What one connection saw.
struct ConnectionResult {
    latency: Histogram<u64>,
    actions: std::collections::BTreeMap<String, u64>,
}

async fn drive(
    target: SocketAddr,
    mut traffic: Traffic,
    count: u64,
    connection: usize,
) -> Result<ConnectionResult> {
    let stream = TcpStream::connect(target)
        .await
        .with_context(|| format!("connecting to {target}"))?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut answers = BufReader::new(read);
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut actions = std::collections::BTreeMap::new();
    let mut line = String::new();
    let mut request = String::with_capacity(512);
    for _ in 0..count {
        traffic.next_request(connection, &mut request);
        let sent = Instant::now();
        write.write_all(request.as_bytes()).await?;
        line.clear();
        let read = answers.read_line(&mut line).await?;
        let mut blank = String::new();
        if read == 0 || answers.read_line(&mut blank).await? == 0 {
            *actions.entry("error".to_string()).or_insert(0) += 1;
            bail!("{target} closed the connection");
        }
        latency.record((sent.elapsed().as_micros() as u64).max(1))?;
        *actions.entry(action_label(&line)).or_insert(0) += 1;
    }
    Ok(ConnectionResult { latency, actions })
}

/// `action=550 5.1.8 Access denied...` -> `550 5.1.8`; `action=DUNNO` -> `DUNNO`.
fn action_label(line: &str) -> String {
    let action = line
        .trim_end()
        .strip_prefix("action=")
        .unwrap_or(line.trim_end());
    let mut words = action.split_whitespace();
    match (words.next(), words.next()) {
        (Some(code), Some(status)) if code.chars().all(|c| c.is_ascii_digit()) => {
            format!("{code} {status}")
        }
        (Some(word), _) => word.to_string(),
        _ => "empty".into(),
    }
}

fn print_report(report: &Report) {
    println!("target            {}", report.target);
    println!("requests          {}", report.requests);
    println!("seconds           {:.3}", report.seconds);
    println!("requests/s        {:.0}", report.requests_per_second);
    println!("latency p50       {} us", report.p50_us);
    println!("latency p99       {} us", report.p99_us);
    println!("latency max       {} us", report.max_us);
    for (action, count) in &report.actions {
        println!("action {action:<10} {count}");
    }
    println!("client CPU        {:.3} s", report.client_cpu_seconds);
    if let Some(server) = report.server_cpu_seconds {
        println!("server CPU        {server:.3} s");
    }
}
