//! `stackbill simulate-stack`: serves a simulated Azure Stack Hub admin API (for demos and
//! tests), over HTTP or HTTPS, and writes the exact truth of what it serves.

use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use jiff::Timestamp;
use stackbill_collector::simulator::{Identity, SimOptions, SimStack};
use stackbill_core::period::{hour_number, hour_start};

use crate::cli::SimulateArgs;

pub(crate) async fn run(args: SimulateArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.faults) {
        bail!("--faults: {} is not between 0 and 1", args.faults);
    }
    let now = Timestamp::now();
    let this_month = now
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .first_of_month();
    let from = match args.from {
        Some(from) => from,
        None => this_month
            .checked_sub(jiff::Span::new().months(1))
            .context("no previous month")?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .context("no previous month")?
            .timestamp(),
    };
    let from = hour_start(hour_number(from)).unwrap_or(from);
    let hours = args
        .hours
        .unwrap_or_else(|| (hour_number(now) - hour_number(from)).max(1));
    if hours < 1 {
        bail!("--hours must be at least 1");
    }
    let mut options = SimOptions::new(args.seed, args.tenants, from, hours);
    options.faults = args.faults;
    options.client_id = args.client_id;
    options.client_secret = args.client_secret;
    options.https = args.tls_cert.is_some();
    if let Some(path) = &args.client_certificate {
        use rustls_pki_types::pem::PemObject as _;
        let pem = std::fs::read(path)
            .with_context(|| format!("--client-certificate: cannot read {}", path.display()))?;
        let certificate = rustls_pki_types::CertificateDer::from_pem_slice(&pem)
            .map_err(|err| anyhow::anyhow!("--client-certificate: {}: {err}", path.display()))?;
        options.client_certificate = Some(certificate.as_ref().to_vec());
    }
    if args.adfs {
        options.identity = Identity::Adfs;
    }
    let sim = Arc::new(SimStack::new(options));
    if let Some(path) = &args.truth {
        std::fs::write(path, sim.truth_ndjson())
            .with_context(|| format!("--truth: cannot write {}", path.display()))?;
    }
    let directory = match &sim.options().identity {
        Identity::Entra { directory } => directory.clone(),
        Identity::Adfs => "adfs".to_owned(),
    };
    let provider = sim.options().provider_subscription;
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let scheme = if args.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let end = hour_start(hour_number(from) + hours).unwrap_or(from);
    eprintln!(
        "simulated stack on {scheme}://{address}: {} tenants, usage {from} to {end}\n\
         collect it with:\n  stackbill collector add REGISTRATION --admin-endpoint {scheme}://{address} \
         --provider-subscription {provider} --client-id {} --client-secret-file FILE \
         --directory {directory} --start {from}",
        sim.subscriptions().len(),
        sim.options().client_id,
    );
    let app = Arc::clone(&sim).router();
    match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => {
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .with_context(|| {
                    format!(
                        "cannot load the TLS certificate {} and key {}",
                        cert.display(),
                        key.display()
                    )
                })?;
            axum_server::from_tcp_rustls(listener, config)?
                .serve(app.into_make_service())
                .await?;
        }
        _ => {
            axum_server::from_tcp(listener)?
                .serve(app.into_make_service())
                .await?;
        }
    }
    Ok(())
}
