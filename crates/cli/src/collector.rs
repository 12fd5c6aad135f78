//! `stackbill collector …`, `stackbill collect` and `stackbill simulate-stack`: configure
//! how each stack's usage is pulled, pull it, and serve a simulated stack to pull from.

use std::io::IsTerminal as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jiff::Timestamp;
use serde::Serialize;
use stackbill_api::dto::CollectorDto;
use stackbill_collector::client::{RetryPolicy, StackAccess, StackClient};
use stackbill_collector::collect::{CollectOptions, CollectSummary, Progress, collect};
use stackbill_core::RegistrationName;
use stackbill_core::period::{hour_number, hour_start};
use stackbill_store::{
    CaSource, ClientCredential, CollectorConfig, CollectorState, SecretKeyring, Store,
};

use crate::admin::open;
use crate::cli::{CollectArgs, CollectorCommand};
use crate::output::{self, outln};

fn no_collector(name: &RegistrationName) -> anyhow::Error {
    anyhow::anyhow!(
        "registration '{name}' has no collector; add one with `stackbill collector add {name} …`"
    )
}

fn show(states: Vec<CollectorState>, now: Timestamp, json: bool, single: bool) -> Result<()> {
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|s| {
            let dto = serde_json::to_value(CollectorDto::new(s.clone(), now)).unwrap_or_default();
            let text = |key: &str| match &dto[key] {
                serde_json::Value::Null => "-".to_owned(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vec![
                text("registration"),
                text("adminEndpoint"),
                text("lastSuccess"),
                s.last_error
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |(_, code, _)| code.clone()),
                text("lagHours"),
                text("subscribers"),
                text("heldRows"),
            ]
        })
        .collect();
    if json {
        let dtos: Vec<CollectorDto> = (states.into_iter())
            .map(|s| CollectorDto::new(s, now))
            .collect();
        return match (single, dtos.first()) {
            (true, Some(first)) => output::json(first),
            _ => output::json(&dtos),
        };
    }
    output::table(
        &[
            "REGISTRATION",
            "ADMIN ENDPOINT",
            "LAST SUCCESS",
            "LAST ERROR",
            "LAG (H)",
            "SUBSCRIBERS",
            "HELD",
        ],
        &rows,
    )?;
    if single && let Some((at, code, message)) = states.first().and_then(|s| s.last_error.clone()) {
        outln!("last error at {at}: {code}: {message}")?;
    }
    Ok(())
}

pub(crate) async fn command(command: CollectorCommand) -> Result<()> {
    match command {
        CollectorCommand::Add {
            registration,
            admin_endpoint,
            provider_subscription,
            client_id,
            client_secret_file,
            client_certificate,
            directory,
            ca_file,
            seal,
            start,
            db,
            output,
        } => {
            let url = admin_endpoint_of(&admin_endpoint)?;
            check_credential(client_secret_file.as_deref(), client_certificate.as_deref())?;
            if let Some(ca) = &ca_file {
                std::fs::metadata(ca)
                    .with_context(|| format!("--ca-file: cannot read {}", ca.display()))?;
            }
            let directory = directory_of(directory.as_deref())?;
            let store = open(&db)?;
            let now = store.now();
            let start = start.unwrap_or(now);
            let start = hour_start(hour_number(start)).unwrap_or(start);
            let absolute = |path: &std::path::Path| {
                std::path::absolute(path)
                    .unwrap_or_else(|_| path.to_owned())
                    .display()
                    .to_string()
            };
            let credential = match (client_secret_file, client_certificate, seal) {
                (Some(path), _, false) => ClientCredential::SecretFile(absolute(&path)),
                (None, Some(path), false) => ClientCredential::CertificateFile(absolute(&path)),
                (secret, certificate, true) => {
                    // Checked above: exactly one is given, and it reads.
                    let (path, kind) = match (secret, certificate) {
                        (Some(path), _) => (path, "clientSecret"),
                        (None, Some(path)) => (path, "clientCertificate"),
                        (None, None) => bail!("give --client-secret-file or --client-certificate"),
                    };
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let text = text.trim_end_matches(['\r', '\n']);
                    let keyring = crate::admin::keyring(&db);
                    let sealed = keyring
                        .seal(
                            text.as_bytes(),
                            &ClientCredential::context(&registration, kind),
                        )
                        .context("--seal")?;
                    if kind == "clientSecret" {
                        ClientCredential::SealedSecret(sealed)
                    } else {
                        ClientCredential::SealedCertificate(sealed)
                    }
                }
                (None, None, false) => bail!("give --client-secret-file or --client-certificate"),
            };
            let state = store
                .put_collector(CollectorConfig {
                    registration,
                    admin_endpoint: url,
                    provider_subscription,
                    client_id,
                    directory,
                    credential,
                    ca: ca_file
                        .as_deref()
                        .map(|path| CaSource::File(absolute(path))),
                    start,
                })
                .await?;
            if !output.json {
                eprintln!(
                    "collector of {} saved; run `stackbill collect` (or `stackbill serve`) to pull usage",
                    state.config.registration
                );
            }
            show(vec![state], now, output.json, true)
        }
        CollectorCommand::List { db, output } => {
            let store = open(&db)?;
            show(store.collectors().await?, store.now(), output.json, false)
        }
        CollectorCommand::Show {
            registration,
            db,
            output,
        } => {
            let store = open(&db)?;
            let state = store
                .collector(registration.clone())
                .await?
                .ok_or_else(|| no_collector(&registration))?;
            show(vec![state], store.now(), output.json, true)
        }
        CollectorCommand::Remove { registration, db } => {
            let store = open(&db)?;
            if !store.remove_collector(registration.clone()).await? {
                return Err(no_collector(&registration));
            }
            eprintln!("collector of {registration} removed; its usage stays");
            Ok(())
        }
    }
}

/// Checks the credential files before they are used: a secret file that is readable and
/// not empty, or a certificate file holding a certificate and its RSA key.
fn check_credential(
    secret: Option<&std::path::Path>,
    certificate: Option<&std::path::Path>,
) -> Result<()> {
    if let Some(path) = secret {
        let bytes = std::fs::read(path)
            .with_context(|| format!("--client-secret-file: cannot read {}", path.display()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            bail!("--client-secret-file: {} is empty", path.display());
        }
    }
    if let Some(path) = certificate {
        let pem = std::fs::read(path)
            .with_context(|| format!("--client-certificate: cannot read {}", path.display()))?;
        stackbill_collector::client::Credential::from_certificate_pem(&pem)
            .map_err(|why| anyhow::anyhow!("--client-certificate: {}: {why}", path.display()))?;
    }
    if secret.is_none() && certificate.is_none() {
        bail!("give --client-secret-file or --client-certificate");
    }
    Ok(())
}

fn admin_endpoint_of(text: &str) -> Result<String> {
    CollectorConfig::admin_endpoint_of(text)
        .map_err(|why| anyhow::anyhow!("--admin-endpoint: {why}"))
}

fn directory_of(text: Option<&str>) -> Result<String> {
    CollectorConfig::directory_of(text).map_err(|why| anyhow::anyhow!("--directory: {why}"))
}

/// One registration's outcome, as `--json` prints it.
#[derive(Serialize)]
struct Outcome {
    #[serde(flatten)]
    summary: CollectSummary,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<OutcomeError>,
}

#[derive(Serialize)]
struct OutcomeError {
    code: String,
    message: String,
}

fn progress_bar(quiet: bool, name: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr_with_hz(4));
    let template = "{spinner} {prefix} [{wide_bar}] {pos}/{len} hours {msg} ETA {eta}";
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(name.to_owned());
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// Draws a collection's progress on `bar` (hours, records/s, ETA) until aborted.
fn watch(bar: &ProgressBar, progress: &Arc<Progress>) -> tokio::task::JoinHandle<()> {
    let (bar, progress) = (bar.clone(), Arc::clone(progress));
    let started = Instant::now();
    tokio::spawn(async move {
        loop {
            bar.set_length(progress.total_hours.load(Ordering::Relaxed));
            bar.set_position(progress.hours.load(Ordering::Relaxed));
            let records = progress.records.load(Ordering::Relaxed);
            let rate = records as f64 / started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("{records} records, {rate:.0} records/s"));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

/// Collects `state`'s stack once.
pub(crate) async fn collect_one(
    store: &Store,
    secrets: &SecretKeyring,
    state: &CollectorState,
    options: &CollectOptions,
    retry: RetryPolicy,
    quiet: bool,
) -> (CollectSummary, Option<(String, String)>) {
    let name = state.config.registration.to_string();
    let client = StackAccess::from_config(&state.config, secrets)
        .and_then(|access| StackClient::new(access, retry));
    let client = match client {
        Ok(client) => Arc::new(client),
        Err(error) => {
            let message = error.to_string();
            let _ = store
                .record_collection(
                    state.config.registration.clone(),
                    Err((error.code(), message.clone())),
                )
                .await;
            let summary = CollectSummary {
                registration: name,
                ..CollectSummary::default()
            };
            return (summary, Some((error.code(), message)));
        }
    };
    let progress = Arc::new(Progress::default());
    let bar = progress_bar(quiet, &name);
    let watcher = watch(&bar, &progress);
    let (summary, error) = collect(store, state, client, options, progress).await;
    watcher.abort();
    bar.finish_and_clear();
    (summary, error.map(|e| (e.code(), e.to_string())))
}

pub(crate) async fn run(args: CollectArgs) -> Result<()> {
    if args.forward.forward_to.is_some() {
        return forward(args).await;
    }
    let store = open(&args.db)?;
    let secrets = crate::admin::keyring(&args.db);
    let all = store.collectors().await?;
    let chosen: Vec<CollectorState> = if args.registrations.is_empty() {
        if all.is_empty() {
            bail!("no stack has a collector; add one with `stackbill collector add`");
        }
        all
    } else {
        let mut chosen = Vec::new();
        for name in &args.registrations {
            let state = (all.iter())
                .find(|s| {
                    s.config
                        .registration
                        .as_str()
                        .eq_ignore_ascii_case(name.as_str())
                })
                .ok_or_else(|| no_collector(name))?;
            chosen.push(state.clone());
        }
        chosen
    };
    if let (Some(from), Some(to)) = (args.from, args.to)
        && to <= from
    {
        bail!("--to must be after --from");
    }
    let options = CollectOptions {
        settle: Duration::from_secs(args.settle.saturating_mul(60)),
        from: args.from,
        to: args.to,
        ..CollectOptions::default()
    };
    let retry = RetryPolicy {
        timeout: Duration::from_secs(args.request_timeout.max(1)),
        attempts: args.attempts,
        ..RetryPolicy::default()
    };
    let mut outcomes = Vec::new();
    let mut failed = Vec::new();
    for state in &chosen {
        let (summary, error) =
            collect_one(&store, &secrets, state, &options, retry, args.json).await;
        if !args.json {
            eprintln!(
                "{}: {} hours, {} records: {} accepted, {} duplicates, {} conflicts, {} rejected, {} held",
                summary.registration,
                summary.hours,
                summary.records,
                summary.accepted,
                summary.duplicates,
                summary.conflicts,
                summary.rejected,
                summary.held
            );
        }
        if let Some((code, message)) = &error {
            failed.push(format!("{}: {code}: {message}", summary.registration));
        }
        outcomes.push(Outcome {
            summary,
            error: error.map(|(code, message)| OutcomeError { code, message }),
        });
    }
    if args.json {
        output::json(&serde_json::json!({ "collectors": outcomes }))?;
    }
    if !failed.is_empty() {
        bail!("collection failed for {}", failed.join("; "));
    }
    Ok(())
}

/// How long a node holds a stack's lease without renewing it, unless `serve` is told.
pub(crate) const LEASE: Duration = Duration::from_secs(120);

/// Collects every configured stack once now and then every `every`, until the process ends.
/// Each stack is collected by one node at a time (a lease of `lease` in the database, renewed
/// while it collects, taken over by another node once its holder died).
pub(crate) async fn collect_on_schedule(
    store: Store,
    secrets: Arc<SecretKeyring>,
    every: Duration,
    lease: Duration,
) {
    let mut seed = [0u8; 8];
    let _ = getrandom::fill(&mut seed);
    let holder = format!("{}-{:x}", std::process::id(), u64::from_le_bytes(seed));
    loop {
        let started = tokio::time::Instant::now();
        match store.collectors().await {
            Ok(collectors) => {
                let mut running = tokio::task::JoinSet::new();
                for state in collectors {
                    running.spawn(collect_leased(
                        store.clone(),
                        Arc::clone(&secrets),
                        state,
                        holder.clone(),
                        lease,
                    ));
                }
                while running.join_next().await.is_some() {}
            }
            Err(error) => tracing::warn!(%error, "cannot read the collectors"),
        }
        tokio::time::sleep_until(started + every).await;
    }
}

async fn collect_leased(
    store: Store,
    secrets: Arc<SecretKeyring>,
    state: CollectorState,
    holder: String,
    lease: Duration,
) {
    let name = state.config.registration.clone();
    match store
        .lease_collector(name.clone(), holder.clone(), lease)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::debug!(registration = %name, "another node collects this stack");
            return;
        }
        Err(error) => {
            tracing::warn!(registration = %name, %error, "cannot take the collector lease");
            return;
        }
    }
    let renewing = {
        let (store, name, holder) = (store.clone(), name.clone(), holder.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                if let Err(error) = store
                    .lease_collector(name.clone(), holder.clone(), lease)
                    .await
                {
                    tracing::warn!(registration = %name, %error, "cannot renew the collector lease");
                }
            }
        })
    };
    let (summary, error) = collect_one(
        &store,
        &secrets,
        &state,
        &CollectOptions::default(),
        RetryPolicy::default(),
        true,
    )
    .await;
    renewing.abort();
    match error {
        None => tracing::info!(
            registration = %name,
            hours = summary.hours,
            records = summary.records,
            accepted = summary.accepted,
            duplicates = summary.duplicates,
            rejected = summary.rejected,
            held = summary.held,
            "collected"
        ),
        Some((code, message)) => tracing::warn!(
            registration = %name,
            code,
            message,
            accepted = summary.accepted,
            "collection failed"
        ),
    }
    if let Err(error) = store.release_collector(name.clone(), holder).await {
        tracing::warn!(registration = %name, %error, "cannot release the collector lease");
    }
}

/// `stackbill collect --forward-to URL`: collects next to the stack and posts to the server.
async fn forward(args: CollectArgs) -> Result<()> {
    let f = args.forward;
    let (Some(server), Some(token), Some(cloud), Some(endpoint), Some(provider), Some(client_id)) = (
        f.forward_to,
        f.token,
        f.cloud_id,
        f.admin_endpoint,
        f.provider_subscription,
        f.client_id,
    ) else {
        bail!(
            "--forward-to needs --token, --cloud-id, --admin-endpoint, --provider-subscription \
             and --client-id"
        );
    };
    check_credential(
        f.client_secret_file.as_deref(),
        f.client_certificate.as_deref(),
    )?;
    let server = CollectorConfig::admin_endpoint_of(&server)
        .map_err(|why| anyhow::anyhow!("--forward-to: {why}"))?;
    let endpoint = admin_endpoint_of(&endpoint)?;
    let credential = match (f.client_secret_file, f.client_certificate) {
        (Some(path), _) => ClientCredential::SecretFile(path.display().to_string()),
        (None, Some(path)) => ClientCredential::CertificateFile(path.display().to_string()),
        (None, None) => bail!("give --client-secret-file or --client-certificate"),
    };
    let config = CollectorConfig {
        registration: "forwarded".parse()?,
        admin_endpoint: endpoint,
        provider_subscription: provider,
        client_id,
        directory: directory_of(f.directory.as_deref())?,
        credential,
        ca: f.ca_file.map(|p| CaSource::File(p.display().to_string())),
        start: f.start.unwrap_or_else(Timestamp::now),
    };
    let retry = RetryPolicy {
        timeout: Duration::from_secs(args.request_timeout.max(1)),
        attempts: args.attempts,
        ..RetryPolicy::default()
    };
    // Files only: nothing is sealed when forwarding.
    let access = StackAccess::from_config(&config, &SecretKeyring::new("stackbill-secret.key"))
        .map_err(|err| anyhow::anyhow!("{}: {err}", err.code()))?;
    let client = Arc::new(
        StackClient::new(access, retry).map_err(|err| anyhow::anyhow!("{}: {err}", err.code()))?,
    );
    let sink = Arc::new(
        stackbill_collector::forward::ForwardSink::open(&server, token, cloud, f.state, retry)
            .map_err(|err| anyhow::anyhow!("{}: {err}", err.code()))?,
    );
    let options = CollectOptions {
        settle: Duration::from_secs(args.settle.saturating_mul(60)),
        from: args.from,
        to: args.to,
        ..CollectOptions::default()
    };
    let progress = Arc::new(Progress::default());
    let bar = progress_bar(args.json, &cloud.to_string());
    let watcher = watch(&bar, &progress);
    let (mut summary, error) = stackbill_collector::collect::collect_with(
        sink,
        cloud,
        config.start,
        client,
        &options,
        progress,
    )
    .await;
    watcher.abort();
    bar.finish_and_clear();
    summary.registration = cloud.to_string();
    let outcome = Outcome {
        summary,
        error: error.map(|e| OutcomeError {
            code: e.code(),
            message: e.to_string(),
        }),
    };
    if args.json {
        output::json(&serde_json::json!({ "collectors": [&outcome] }))?;
    } else {
        let s = &outcome.summary;
        eprintln!(
            "{cloud} forwarded to {server}: {} hours, {} records: {} accepted, {} duplicates, {} conflicts, {} rejected, {} held",
            s.hours, s.records, s.accepted, s.duplicates, s.conflicts, s.rejected, s.held
        );
    }
    if let Some(error) = &outcome.error {
        bail!(
            "collection failed for {cloud}: {}: {}",
            error.code,
            error.message
        );
    }
    Ok(())
}
