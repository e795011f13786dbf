//! What the load generators in `src/bin` share (`acme_bench`, `cmp_bench`, run by
//! `scripts/bench-ca`): `--name value` arguments, jobs timed at a concurrency (rate and p99),
//! and a PEM block's DER.

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// A result whose error is anything printable.
pub type Fallible<T> = Result<T, Box<dyn Error + Send + Sync>>;

/// An error saying `what`.
pub fn fail(what: impl Into<String>) -> Box<dyn Error + Send + Sync> {
    what.into().into()
}

/// `--name value` pairs.
pub struct Args(HashMap<String, String>);

impl Args {
    /// The process's arguments.
    pub fn parse() -> Fallible<Self> {
        let mut map = HashMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(name) = args.next() {
            let name = name
                .strip_prefix("--")
                .ok_or_else(|| fail(format!("unexpected {name}")))?
                .to_owned();
            let value = args
                .next()
                .ok_or_else(|| fail(format!("--{name} needs a value")))?;
            map.insert(name, value);
        }
        Ok(Self(map))
    }

    /// `--name`'s value (required).
    pub fn get(&self, name: &str) -> Fallible<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| fail(format!("--{name} is required")))
    }

    /// `--name`'s value as a number, `default` when absent.
    pub fn number(&self, name: &str, default: usize) -> Fallible<usize> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| fail(format!("--{name}: a number"))),
        }
    }
}

/// Runs `job(0..count)` with `concurrency` in flight: (requests per second, p99 in ms).
pub async fn timed<F, Fut>(count: usize, concurrency: usize, job: F) -> Fallible<(f64, f64)>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Fallible<()>> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (job, next) = (Arc::clone(&job), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, Box<dyn Error + Send + Sync>>(latencies);
                }
                let t = Instant::now();
                job(i).await?;
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut all: Vec<Duration> = Vec::with_capacity(count);
    for w in workers {
        all.extend(w.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let p99 = all
        .get((all.len() * 99 / 100).min(all.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default();
    Ok((count as f64 / elapsed, p99.as_secs_f64() * 1000.0))
}

/// The DER of a PEM block.
pub fn pem_body(pem: &str) -> Fallible<Vec<u8>> {
    use base64::Engine as _;
    let text: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(text)?)
}

/// What both load generators start from: their arguments, a pooled client trusting
/// `--ca-file`, and `--count` (default 2000), `--concurrency` (32) and `--rounds` (3).
pub struct Load {
    /// The arguments.
    pub args: Args,
    /// The client.
    pub client: cryptoutil_federation::HttpsClient,
    /// Requests per run.
    pub count: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// Rounds.
    pub rounds: usize,
}

impl Load {
    /// The process's arguments read, the client made.
    pub fn parse() -> Fallible<Self> {
        let args = Args::parse()?;
        let config = cryptoutil_federation::tls::client_config_from_file(std::path::Path::new(
            args.get("ca-file")?,
        ))?;
        Ok(Self {
            client: cryptoutil_federation::HttpsClient::new(config).pooled(256),
            count: args.number("count", 2000)?,
            concurrency: args.number("concurrency", 32)?,
            rounds: args.number("rounds", 3)?,
            args,
        })
    }
}

/// The CA's issuance API (`--issue-url`, `--token`, profile tls-server, the CSR of
/// `--csr-pem`) driven by the same client: the figure the enrollment protocols are measured
/// against.
#[derive(Clone)]
pub struct Core {
    client: cryptoutil_federation::HttpsClient,
    url: Arc<str>,
    bearer: Arc<str>,
    body: Arc<str>,
}

impl Core {
    /// The API `load`'s arguments name, asked for certificates of `csr_pem`.
    pub fn new(load: &Load, csr_pem: &str) -> Fallible<Self> {
        Ok(Self {
            client: load.client.clone(),
            url: load.args.get("issue-url")?.into(),
            bearer: format!("Bearer {}", load.args.get("token")?).into(),
            body: serde_json::json!({"profile": "tls-server", "csr": csr_pem})
                .to_string()
                .into(),
        })
    }

    /// One issuance (201 expected).
    async fn issue(&self) -> Fallible<()> {
        let r = self
            .client
            .send(
                hyper::Method::POST,
                &self.url,
                &[
                    ("authorization", &*self.bearer),
                    ("content-type", "application/json"),
                ],
                self.body.as_bytes().to_vec().into(),
            )
            .await?;
        if r.status.as_u16() != 201 {
            return Err(fail(format!("issue: {}", r.status)));
        }
        Ok(())
    }

    /// `count` issuances with `concurrency` in flight: (requests per second, p99 in ms).
    pub async fn timed(&self, count: usize, concurrency: usize) -> Fallible<(f64, f64)> {
        let core = self.clone();
        timed(count, concurrency, move |_| {
            let core = core.clone();
            async move { core.issue().await }
        })
        .await
    }
}

/// Rounds of the core API beside a protocol, printed as they come and averaged at the end.
#[derive(Default)]
pub struct Rounds {
    sums: [f64; 4],
    count: usize,
}

impl Rounds {
    /// Prints the header line.
    pub fn start() -> Self {
        println!("round  run                                            req/s    p99_ms");
        Self::default()
    }

    /// Prints and counts round `round`: the core API's (rate, p99) and `protocol`'s.
    pub fn round(&mut self, round: usize, protocol: &str, core: (f64, f64), other: (f64, f64)) {
        println!(
            "{round:<6} {:<46} {:>8.0} {:>9.2}",
            "cryptoutil issue API (same client)", core.0, core.1
        );
        println!(
            "{round:<6} {protocol:<46} {:>8.0} {:>9.2}",
            other.0, other.1
        );
        for (sum, v) in self.sums.iter_mut().zip([core.0, core.1, other.0, other.1]) {
            *sum += v;
        }
        self.count += 1;
    }

    /// Prints the means, `name`'s rate as a multiple of the API's.
    pub fn summary(&self, name: &str) {
        let n = self.count.max(1) as f64;
        let [core_rate, core_p99, rate, p99] = self.sums.map(|s| s / n);
        println!(
            "mean {name}: {rate:.0}/s p99 {p99:.2} ms | issue API (same client) {core_rate:.0}/s p99 {core_p99:.2} ms (x{:.2} of the issuance API)",
            rate / core_rate
        );
    }
}
