//! An open-loop HTTP load generator for bench/gateway.sh: it sends requests at a fixed rate and
//! measures each one from the moment it was due to be sent, not from when it was sent, so a
//! server that falls behind is charged for the queue it builds (no coordinated omission).
//!
//! ```text
//! loadgen URL --rate 1000 --seconds 10 [--header 'authorization: Bearer KEY']... [--body JSON]
//! loadgen URL --open 1000 [...]      # N requests at once, held open until they end
//! loadgen URL --clients 50 --seconds 10 --get   # closed loop: 50 clients, each waits for its answer
//! ```
//!
//! Prints one JSON object: requests sent, answered 200, failed, the rate achieved, and the
//! latency (to the end of the body) and time to first byte (the first body bytes) at p50, p99,
//! p99.9 and max, in microseconds. A request is POSTed with the body; the response body is read
//! to its end and its length checked to be the same for every answer.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a tool: a panic is its report

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

struct Args {
    url: String,
    rate: u64,
    seconds: u64,
    open: u64,
    /// Closed loop: this many clients, each sending its next request when the last is answered.
    clients: u64,
    get: bool,
    headers: Vec<(String, String)>,
    body: Bytes,
}

fn args() -> Args {
    let mut a = Args {
        url: String::new(),
        rate: 100,
        seconds: 5,
        open: 0,
        clients: 0,
        get: false,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Bytes::from_static(b"{}"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| panic!("{x} needs a value"));
        match x.as_str() {
            "--rate" => a.rate = val().parse().expect("--rate N"),
            "--seconds" => a.seconds = val().parse().expect("--seconds N"),
            "--open" => a.open = val().parse().expect("--open N"),
            "--clients" => a.clients = val().parse().expect("--clients N"),
            "--get" => a.get = true,
            "--body" => a.body = Bytes::from(val()),
            "--header" => {
                let h = val();
                let (k, v) = h.split_once(':').expect("--header 'name: value'");
                a.headers
                    .push((k.trim().to_lowercase(), v.trim().to_string()));
            }
            _ if a.url.is_empty() && !x.starts_with("--") => a.url = x,
            _ => panic!("unknown argument {x}; see the comment at the top of loadgen.rs"),
        }
    }
    assert!(!a.url.is_empty(), "usage: loadgen URL --rate N --seconds N");
    a
}

#[derive(Default)]
struct Tally {
    /// (latency, time to first byte) in microseconds, of the answers with status 200.
    ok: Vec<(u64, u64)>,
    failed: u64,
    first_error: Option<String>,
    lengths: std::collections::BTreeSet<usize>,
}

async fn one(client: Client, a: Arc<Args>, due: Instant, tally: Arc<Mutex<Tally>>) {
    let mut req = if a.get {
        http::Request::get(&a.url)
    } else {
        http::Request::post(&a.url)
    };
    for (k, v) in &a.headers {
        req = req.header(k, v);
    }
    let body = if a.get { Bytes::new() } else { a.body.clone() };
    let req = req.body(Full::new(body)).unwrap();
    let result = async {
        let resp = client.request(req).await.map_err(|e| format!("{e:?}"))?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut first = None;
        let mut len = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            if let Some(d) = frame.data_ref() {
                first.get_or_insert_with(Instant::now);
                len += d.len();
            }
        }
        let end = Instant::now();
        if status != 200 {
            return Err(format!("status {status}"));
        }
        Ok((end, first.unwrap_or(end), len))
    }
    .await;
    let mut t = tally.lock().unwrap();
    match result {
        Ok((end, first, len)) => {
            let us = |i: Instant| i.duration_since(due).as_micros() as u64;
            t.ok.push((us(end), us(first)));
            t.lengths.insert(len);
        }
        Err(e) => {
            t.failed += 1;
            t.first_error.get_or_insert(e);
        }
    }
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[i.clamp(1, sorted.len()) - 1]
}

fn main() {
    let a = Arc::new(args());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client: Client = {
        let _g = rt.enter();
        let mut conn = hyper_util::client::legacy::connect::HttpConnector::new();
        conn.set_nodelay(true);
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_max_idle_per_host(usize::MAX)
            .build(conn)
    };
    let tally = Arc::new(Mutex::new(Tally::default()));
    if a.clients > 0 {
        closed_loop(&rt, client, a, tally);
        return;
    }
    let total = if a.open > 0 {
        a.open
    } else {
        a.rate * a.seconds
    };
    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total as usize);
    // The schedule runs on this thread with the OS's fine-grained sleep (tokio's timer rounds to
    // a millisecond); each request is due at start + i / rate, whenever it actually leaves.
    for i in 0..total {
        let due = if a.open > 0 {
            start
        } else {
            start + Duration::from_nanos(i * 1_000_000_000 / a.rate)
        };
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        tasks.push(rt.spawn(one(client.clone(), a.clone(), due, tally.clone())));
    }
    rt.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });
    report(&a, total, start.elapsed().as_secs_f64(), &tally);
}

/// `--clients N`: N clients for `--seconds`, each timing its request from when it is sent.
fn closed_loop(
    rt: &tokio::runtime::Runtime,
    client: Client,
    a: Arc<Args>,
    tally: Arc<Mutex<Tally>>,
) {
    let start = Instant::now();
    let end = start + Duration::from_secs(a.seconds);
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..a.clients {
            let (client, a, tally, sent) = (client.clone(), a.clone(), tally.clone(), sent.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < end {
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    one(client.clone(), a.clone(), Instant::now(), tally.clone()).await;
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    let total = sent.load(std::sync::atomic::Ordering::Relaxed);
    report(&a, total, start.elapsed().as_secs_f64(), &tally);
}

fn report(a: &Args, total: u64, elapsed: f64, tally: &Mutex<Tally>) {
    let t = tally.lock().unwrap();
    let mut lat: Vec<u64> = t.ok.iter().map(|x| x.0).collect();
    let mut ttfb: Vec<u64> = t.ok.iter().map(|x| x.1).collect();
    lat.sort_unstable();
    ttfb.sort_unstable();
    let summary = |v: &[u64]| {
        serde_json::json!({"p50": pct(v, 50.0), "p99": pct(v, 99.0), "p999": pct(v, 99.9),
                           "max": v.last().copied().unwrap_or(0)})
    };
    println!(
        "{}",
        serde_json::json!({
            "sent": total, "ok": t.ok.len(), "failed": t.failed,
            "first_error": t.first_error, "body_lengths": t.lengths,
            "rate": a.rate, "clients": a.clients, "achieved_rps": (t.ok.len() as f64 / elapsed).round(),
            "latency_us": summary(&lat), "ttfb_us": summary(&ttfb),
        })
    );
}
