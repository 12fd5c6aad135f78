//! The `stackbill` binary: command-line parsing, wiring, exit codes.

mod admin;
mod cli;
mod collector;
mod database;
mod demo;
mod generate;
mod import;
mod invoice;
mod output;
mod profile;
mod ratecard;
mod reconciliation;
mod refusal;
mod report;
mod serve;
mod simulate;
mod webhook;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::output::outln;
use crate::refusal::describe;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = match cli.command {
        Command::Serve(_) | Command::SimulateStack(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, never in a journal or a file.
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        // A closed standard error (a supervisor gone, a pipe nobody reads) must not turn a
        // log line into a panic of the request being logged.
        .log_internal_errors(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`| head`): it has what it wanted.
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let listener = serve::bind(args.listen)?;
            let store = admin::open_or_create(&args.db)?;
            // Refuse a database that cannot be written rather than answer 503 to every write.
            if let Err(err) = store.health().await
                && err.storage_fault() == Some(stackbill_store::StorageFault::ReadOnly)
            {
                anyhow::bail!(
                    "cannot serve {}: the database cannot be written ({err})",
                    store.location()
                );
            }
            let auth = serve::auth_config(&store).await?;
            let secrets = std::sync::Arc::new(admin::keyring(&args.db));
            if args.collect_every > 0 {
                let every = std::time::Duration::from_secs(args.collect_every.saturating_mul(60));
                tokio::spawn(collector::collect_on_schedule(
                    store.clone(),
                    std::sync::Arc::clone(&secrets),
                    every,
                    std::time::Duration::from_secs(args.collect_lease),
                ));
            }
            let listen = serve::Listen {
                listener,
                tls: args.tls_cert.zip(args.tls_key),
                public_url: args.public_url,
                header_timeout: std::time::Duration::from_secs(args.header_timeout),
            };
            let webhooks = (!args.no_webhook_delivery).then(Default::default);
            serve::serve(store, secrets, auth, listen, webhooks, |url| {
                eprintln!("stackbill listening on {url}");
            })
            .await
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Partner(command) => admin::partner(command).await,
        Command::Subscription(command) => admin::subscription(command).await,
        Command::Registration(command) => admin::registration(command).await,
        Command::Tenant(command) => admin::tenant(command).await,
        Command::Meter(command) => admin::meter(command).await,
        Command::Ratecard(command) => ratecard::run(command).await,
        Command::Generate(args) => generate::run(&args),
        Command::Usage(cli::UsageCommand::Import(args)) => import::run(args).await,
        Command::Invoice(command) => invoice::run(command).await,
        Command::Token(command) => admin::token(command).await,
        Command::Webhook(command) => webhook::run(command).await,
        Command::Report(command) => report::run(command).await,
        Command::Database(command) => database::run(command).await,
        Command::Collector(command) => collector::command(command).await,
        Command::Collect(args) => collector::run(args).await,
        Command::SimulateStack(args) => simulate::run(args).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command, "stackbill", &mut out);
            output::write_stdout(&out)
        }
        Command::Man => {
            let mut out = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut out)?;
            output::write_stdout(&out)
        }
        Command::RegistrationToken {
            cloud_id,
            billing_model,
            object_id,
        } => {
            outln!(
                "{}",
                stackbill_api::azure::encode_token(cloud_id, billing_model, object_id.as_deref())
            )?;
            Ok(())
        }
    }
}
