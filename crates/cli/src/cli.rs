//! The command line, as clap parses it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use jiff::Timestamp;
use rust_decimal::Decimal;
use stackbill_core::{
    BillingModel, CloudId, MeterId, OfferType, PartnerId, Period, RateCardName, RegistrationName,
    SubscriptionId, TenantId,
};

/// Usage metering and billing for multi-tenant Azure Stack Hub clouds run by Cloud Solution
/// Providers.
///
/// stackbill keeps each stack's registration (its default subscription and one customer
/// subscription per tenant), maps every tenant's usage to the subscription that pays for it,
/// and serves the native and Azure-compatible APIs. Start with `stackbill demo`.
#[derive(Debug, Parser)]
#[command(
    name = "stackbill",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// An instant from the command line: RFC 3339 with a time and an offset; a bare date is
/// refused with an example of what to give.
fn instant(text: &str) -> Result<Timestamp, String> {
    text.parse::<Timestamp>().map_err(|_| {
        let example = if text.len() == 10 && text.as_bytes().get(4) == Some(&b'-') {
            format!("{text}T00:00:00Z")
        } else {
            "2025-05-01T00:00:00Z".to_owned()
        };
        format!("'{text}' is not an instant: give a date, a time and an offset, e.g. {example}")
    })
}

/// Where the database is.
#[derive(Debug, Args)]
pub(crate) struct DbArgs {
    /// The embedded database file (created if missing)
    #[arg(long, env = "STACKBILL_DB", default_value = "stackbill.db")]
    pub(crate) db: PathBuf,
    /// A PostgreSQL database instead of the file, shared by every stackbill node:
    /// postgres://USER:PASSWORD@HOST:PORT/DATABASE, with optional parameters pool_size=N
    /// (connections per node, default 16), sslmode=require and sslrootcert=FILE (TLS),
    /// lock_timeout=SECONDS and idle_in_transaction_session_timeout=SECONDS (see
    /// docs/scaling.md)
    #[arg(long, env = "STACKBILL_DATABASE_URL", value_name = "URL")]
    pub(crate) database_url: Option<String>,
    /// The key that seals collectors' secrets given over the API (64 hex digits; created on
    /// first use if missing). Default: beside the database file ({db}.key), or
    /// ./stackbill-secret.key with --database-url (give every node the same file)
    #[arg(long, env = "STACKBILL_SECRET_KEY_FILE", value_name = "FILE")]
    pub(crate) secret_key_file: Option<PathBuf>,
}

/// How to print results.
#[derive(Debug, Args)]
pub(crate) struct OutputArgs {
    /// Print JSON (the API's shapes) instead of a table
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve the HTTP API
    Serve(ServeArgs),
    /// Create a demo database with a CSP, its stacks and tenants, and serve it
    Demo(DemoArgs),
    /// Manage CSP partners
    #[command(subcommand)]
    Partner(PartnerCommand),
    /// Manage billing subscriptions (the Azure subscriptions that are charged)
    #[command(subcommand)]
    Subscription(SubscriptionCommand),
    /// Manage stack registrations and their default subscriptions
    #[command(subcommand)]
    Registration(RegistrationCommand),
    /// Map tenants (directories) of a registration to their customer subscriptions
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Browse and extend the meter catalog
    #[command(subcommand)]
    Meter(MeterCommand),
    /// Rate cards: prices per meter, with tiers and included quantities
    #[command(subcommand)]
    Ratecard(RatecardCommand),
    /// Import usage records from files
    #[command(subcommand)]
    Usage(UsageCommand),
    /// Invoices: list, show, finalize a month, explain a change, export
    #[command(subcommand)]
    Invoice(InvoiceCommand),
    /// API tokens: create (the secret is shown once), list, revoke
    #[command(subcommand)]
    Token(TokenCommand),
    /// Webhook endpoints of partners: add (the signing secret is shown once), list, the
    /// delivery log, replay
    #[command(subcommand)]
    Webhook(WebhookCommand),
    /// Reports: the margin per partner, customer and meter
    #[command(subcommand)]
    Report(ReportCommand),
    /// Move the embedded database's data into PostgreSQL
    #[command(subcommand)]
    Database(DatabaseCommand),
    /// Print the registration token a stack operator hands over for the Azure-compatible API
    RegistrationToken {
        /// The stack's cloud id
        #[arg(long)]
        cloud_id: CloudId,
        /// PayAsYouUse, Capacity or Development
        #[arg(long, default_value = "PayAsYouUse")]
        billing_model: BillingModel,
        /// The object id of the stack's identity
        #[arg(long)]
        object_id: Option<String>,
    },
    /// Write realistic synthetic usage as NDJSON (deterministic for a seed)
    Generate(GenerateArgs),
    /// Configure how usage is pulled from each stack's admin API
    #[command(subcommand)]
    Collector(CollectorCommand),
    /// Pull usage from the stacks now: every closed hour since each collector's cursor, or
    /// a back-fill with --from
    Collect(CollectArgs),
    /// Serve a simulated Azure Stack Hub admin API (for demos and tests)
    SimulateStack(SimulateArgs),
    /// Print a shell completion script: `stackbill completions bash > /etc/bash_completion.d/stackbill`
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `stackbill man | man -l -`
    Man,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CollectorCommand {
    /// Pull a registration's usage from its stack's admin API (replaces its settings; its
    /// progress is kept)
    Add {
        /// The registration whose stack this is
        registration: RegistrationName,
        /// The stack's admin endpoint: https://adminmanagement.{region}.{fqdn}
        #[arg(long, value_name = "URL")]
        admin_endpoint: String,
        /// The stack's Default Provider Subscription
        #[arg(long, value_name = "GUID")]
        provider_subscription: SubscriptionId,
        /// The service principal's application (client) id
        #[arg(long, value_name = "ID")]
        client_id: String,
        /// A file holding the client secret; stackbill stores the path (or, with --seal, the
        /// secret sealed with the server's key), never the secret in clear text
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "client_certificate",
            conflicts_with = "client_certificate"
        )]
        client_secret_file: Option<PathBuf>,
        /// Instead of a secret: a PEM file holding the client certificate and its PKCS#8
        /// RSA key (the token request carries an assertion signed with it)
        #[arg(long, value_name = "PEM")]
        client_certificate: Option<PathBuf>,
        /// The stack's Entra ID directory (tenant) id, or adfs; found from the stack when
        /// it signs in with AD FS
        #[arg(long, value_name = "GUID|adfs")]
        directory: Option<String>,
        /// A PEM file of CAs to trust for the stack's endpoints
        #[arg(long, value_name = "PEM")]
        ca_file: Option<PathBuf>,
        /// Store the secret or certificate itself, sealed with the server's key
        /// (--secret-key-file), instead of the file's path: for nodes that do not share the
        /// file
        #[arg(long)]
        seal: bool,
        /// The first reported hour to collect (default: the start of the current hour)
        #[arg(long, value_parser = instant, value_name = "RFC3339")]
        start: Option<Timestamp>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Every collector and how it fares
    List {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// One collector: settings, last success, last error, lag, held rows
    Show {
        /// The registration
        registration: RegistrationName,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Stop collecting a registration's stack (the usage already collected stays)
    Remove {
        /// The registration
        registration: RegistrationName,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Args)]
pub(crate) struct CollectArgs {
    /// The registrations to collect (default: every one with a collector)
    pub(crate) registrations: Vec<RegistrationName>,
    /// Re-collect from this reported hour (a back-fill; what is stored already is counted
    /// as duplicates)
    #[arg(long, value_parser = instant, value_name = "RFC3339")]
    pub(crate) from: Option<Timestamp>,
    /// Collect the reported hours before this instant only
    #[arg(long, value_parser = instant, value_name = "RFC3339")]
    pub(crate) to: Option<Timestamp>,
    /// Minutes to wait after a reported hour ends before collecting it
    #[arg(long, default_value_t = 15, value_name = "MINUTES")]
    pub(crate) settle: u64,
    /// The longest one request to a stack may take, in seconds
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    pub(crate) request_timeout: u64,
    /// Tries per request before a collection fails (429, 5xx, timeouts and resets are
    /// retried with exponential backoff)
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub(crate) attempts: u32,
    /// Print {"collectors":[...]} as JSON; no progress bar
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) db: DbArgs,
    #[command(flatten)]
    pub(crate) forward: ForwardArgs,
}

/// Collecting next to a stack the server cannot reach: the stack's settings are given as
/// flags, the records are posted to the server with a stack token, and the progress is kept
/// in a local state file.
#[derive(Debug, Args)]
#[command(next_help_heading = "Forwarding (runs next to the stack, without a database)")]
pub(crate) struct ForwardArgs {
    /// Post the records to this stackbill server (its base URL) instead of a database
    #[arg(long, value_name = "URL", requires_all = ["token", "cloud_id", "admin_endpoint",
          "provider_subscription", "client_id"],
          conflicts_with = "registrations")]
    pub(crate) forward_to: Option<String>,
    /// A stack token of the registration (`stackbill token create --role stack`)
    #[arg(long, env = "STACKBILL_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// The stack's cloud id, as registered
    #[arg(long, value_name = "GUID")]
    pub(crate) cloud_id: Option<CloudId>,
    /// The stack's admin endpoint: https://adminmanagement.{region}.{fqdn}
    #[arg(long, value_name = "URL")]
    pub(crate) admin_endpoint: Option<String>,
    /// The stack's Default Provider Subscription
    #[arg(long, value_name = "GUID")]
    pub(crate) provider_subscription: Option<SubscriptionId>,
    /// The service principal's application (client) id
    #[arg(long, value_name = "ID")]
    pub(crate) client_id: Option<String>,
    /// A file holding the client secret
    #[arg(long, value_name = "FILE", conflicts_with = "client_certificate")]
    pub(crate) client_secret_file: Option<PathBuf>,
    /// Instead of a secret: a PEM file holding the client certificate and its PKCS#8 RSA key
    #[arg(long, value_name = "PEM")]
    pub(crate) client_certificate: Option<PathBuf>,
    /// The stack's Entra ID directory (tenant) id, or adfs
    #[arg(long, value_name = "GUID|adfs")]
    pub(crate) directory: Option<String>,
    /// A PEM file of CAs to trust for the stack's endpoints
    #[arg(long, value_name = "PEM")]
    pub(crate) ca_file: Option<PathBuf>,
    /// The first reported hour to collect (default: the start of the current hour)
    #[arg(long, value_parser = instant, value_name = "RFC3339")]
    pub(crate) start: Option<Timestamp>,
    /// Where the forwarding collector keeps its progress (moved only once the server
    /// stored the records)
    #[arg(
        long,
        value_name = "FILE",
        default_value = "stackbill-collector-state.json"
    )]
    pub(crate) state: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub(crate) listen: SocketAddr,
    /// Everything served follows from the seed
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// User subscriptions (one tenant each)
    #[arg(long, default_value_t = 20)]
    pub(crate) tenants: usize,
    /// The first usage hour (default: the start of the previous month)
    #[arg(long, value_parser = instant, value_name = "RFC3339")]
    pub(crate) from: Option<Timestamp>,
    /// Usage hours served (default: up to the current hour)
    #[arg(long)]
    pub(crate) hours: Option<i64>,
    /// The share of answers that fail (429, 500, 504 or a reset), 0 to 1
    #[arg(long, default_value_t = 0.0)]
    pub(crate) faults: f64,
    /// Write the exact totals served, per tenant, meter and usage hour, as NDJSON
    #[arg(long, value_name = "FILE")]
    pub(crate) truth: Option<PathBuf>,
    /// Sign in with AD FS instead of Entra ID
    #[arg(long)]
    pub(crate) adfs: bool,
    /// The client id it accepts
    #[arg(long, default_value = "stackbill-collector")]
    pub(crate) client_id: String,
    /// The client secret it accepts
    #[arg(long, default_value = "simulated-secret")]
    pub(crate) client_secret: String,
    /// Also accept client assertions signed by the key of this certificate (PEM)
    #[arg(long, value_name = "PEM")]
    pub(crate) client_certificate: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key
    #[arg(long, requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum InvoiceCommand {
    /// Every invoice of a month
    List {
        /// The month, YYYY-MM
        period: Period,
        /// Only this partner's
        #[arg(long)]
        partner: Option<PartnerId>,
        /// As the data stood at this instant (RFC 3339)
        #[arg(long, value_parser = instant)]
        as_of: Option<Timestamp>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// One invoice, line by line
    Show {
        /// The billed subscription
        subscription: SubscriptionId,
        /// The month, YYYY-MM
        period: Period,
        /// As the data stood at this instant (RFC 3339)
        #[arg(long, value_parser = instant)]
        as_of: Option<Timestamp>,
        /// Print CSV
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Write an invoice as a PDF document (a draft says DRAFT on every page; a final one is
    /// the same bytes every time)
    Pdf {
        /// The billed subscription
        subscription: SubscriptionId,
        /// The month, YYYY-MM
        period: Period,
        /// As the data stood at this instant (RFC 3339)
        #[arg(long, value_parser = instant)]
        as_of: Option<Timestamp>,
        /// The file to write ("-": standard output); default: the invoice number, or
        /// [draft-]SUBSCRIPTION-PERIOD, with .pdf, here
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Freeze a month's invoices (once it has ended); running it again changes nothing
    Finalize {
        /// The month, YYYY-MM
        period: Period,
        /// Only this partner's invoices
        #[arg(long)]
        partner: Option<PartnerId>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// What changed in an invoice between two instants, and why
    Diff {
        /// The billed subscription
        subscription: SubscriptionId,
        /// The month, YYYY-MM
        period: Period,
        /// The earlier instant (RFC 3339)
        #[arg(long, value_parser = instant)]
        from: Timestamp,
        /// The later instant (RFC 3339; default now)
        #[arg(long, value_parser = instant)]
        to: Option<Timestamp>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Write a month's invoices to files: one per invoice, plus a summary per partner; or
    /// (partner-center) one reconciliation file in Partner Center's daily-rated usage shape
    Export {
        /// The month, YYYY-MM
        period: Period,
        /// csv, json, pdf or partner-center
        #[arg(long, default_value = "csv")]
        format: ExportFormat,
        /// The directory to write to (created if missing)
        #[arg(long)]
        out: PathBuf,
        /// Only this partner's
        #[arg(long)]
        partner: Option<PartnerId>,
        /// Compress the reconciliation file (partner-center): reconciliation-PERIOD.csv.gz
        #[arg(long)]
        gzip: bool,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DatabaseCommand {
    /// Create the database (an empty, migrated file, or the schema in PostgreSQL) if it does
    /// not exist yet; an existing one is brought up to date and left as it is
    Init {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Copy every row of the embedded database file (directory, usage, invoices, tokens)
    /// into an empty PostgreSQL database, in one transaction
    Copy {
        /// The embedded database file to copy
        #[arg(long, env = "STACKBILL_DB", default_value = "stackbill.db")]
        db: PathBuf,
        /// The PostgreSQL database to copy into, holding no data yet:
        /// postgres://USER:PASSWORD@HOST:PORT/DATABASE
        #[arg(long, env = "STACKBILL_DATABASE_URL", value_name = "URL")]
        to: String,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Check the database's integrity (exit 1 when a problem is found)
    Check {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum ReportCommand {
    /// A month's margin: per partner, customer subscription and meter, the quantity, what it
    /// cost (the cost rate cards), what was billed, the margin and margin %
    Margin {
        /// The month, YYYY-MM
        period: Period,
        /// Only this partner's
        #[arg(long)]
        partner: Option<PartnerId>,
        /// Print CSV
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show or set the cost rate card (what the CSP pays for its stacks' usage) of a partner,
    /// or of one registration whose stack costs differently
    Cost {
        /// The partner
        #[arg(
            long,
            conflicts_with = "registration",
            required_unless_present = "registration"
        )]
        partner: Option<PartnerId>,
        /// The registration
        #[arg(long)]
        registration: Option<RegistrationName>,
        /// The rate card to set (left out: show the one set)
        card: Option<RateCardName>,
        /// Remove the cost rate card
        #[arg(long, conflicts_with = "card")]
        clear: bool,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum WebhookCommand {
    /// Register an endpoint for a partner's events; prints its signing secret (only now)
    Add {
        /// Whose events it receives
        #[arg(long)]
        partner: PartnerId,
        /// Where they are posted: https://… (http:// to a loopback address only)
        #[arg(long)]
        url: String,
        /// Event types, comma separated, or * for every type: invoice.finalized,
        /// invoice.adjusted, usage.unmapped_tenant, collector.failing, collector.recovered,
        /// usage.rejected
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// What it is for
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List endpoints
    List {
        /// Only this partner's
        #[arg(long)]
        partner: Option<PartnerId>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Turn deliveries to an endpoint on (again, after a 410 answer turned them off) or off
    Enable {
        /// The endpoint (we_…)
        id: String,
        /// Turn it off instead
        #[arg(long)]
        off: bool,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Remove an endpoint and its delivery log
    Remove {
        /// The endpoint (we_…)
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// An endpoint's delivery log, latest event first
    Deliveries {
        /// The endpoint (we_…)
        id: String,
        /// How many
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Send an event to an endpoint again, now, under the same id
    Replay {
        /// The endpoint (we_…)
        id: String,
        /// The event (msg_…)
        event_id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token and print its secret (shown only now)
    Create {
        /// admin, partner, stack or customer
        #[arg(long)]
        role: String,
        /// A partner token's partner
        #[arg(long)]
        partner: Option<String>,
        /// A stack token's cloud id
        #[arg(long)]
        cloud_id: Option<String>,
        /// A customer token's tenant (directory) id
        #[arg(long)]
        tenant_id: Option<String>,
        /// A label for people
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List live tokens (never their secrets)
    List {
        /// Only this partner's
        #[arg(long)]
        partner: Option<PartnerId>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Revoke a token: it stops working at once
    Revoke {
        /// The token's id (from `token list`)
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// File formats of `invoice export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ExportFormat {
    /// One CSV file per invoice, and a CSV summary
    Csv,
    /// One JSON file per invoice, and a JSON summary
    Json,
    /// One PDF document per invoice, and a CSV summary
    Pdf,
    /// One CSV of every invoice's rows per customer, meter, day and resource, in Partner
    /// Center's daily-rated usage columns; the rows add up to the invoices exactly
    PartnerCenter,
}

#[derive(Debug, Subcommand)]
pub(crate) enum UsageCommand {
    /// Import usage files (NDJSON, JSON or CSV); safe to re-run after any interruption
    Import(ImportArgs),
}

/// Records per transaction: large enough that the sync per commit is noise, small enough
/// that two batches in flight stay a few tens of megabytes.
pub(crate) const BATCH_RECORDS: u64 = 50_000;

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// Files to import; `-` reads standard input
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
    /// The format, when the file extension does not tell (.ndjson/.jsonl, .json, .csv)
    #[arg(long)]
    pub(crate) format: Option<stackbill_io::Format>,
    /// Write every rejected and conflicting record to this file, as NDJSON
    #[arg(long)]
    pub(crate) errors: Option<PathBuf>,
    /// Records per transaction (each is committed and synced before the next)
    #[arg(long, default_value_t = BATCH_RECORDS,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) batch_records: u64,
    #[command(flatten)]
    pub(crate) db: DbArgs,
    /// Print one JSON summary object and no progress bar
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct GenerateArgs {
    /// How many records to write
    #[arg(long, default_value_t = 100_000)]
    pub(crate) records: u64,
    /// The month of usage, YYYY-MM (default: last month)
    #[arg(long)]
    pub(crate) month: Option<String>,
    /// The seed: the same options and seed write the same bytes
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// How many stacks (the demo registers 2 connected stacks)
    #[arg(long, default_value_t = 2)]
    pub(crate) stacks: u64,
    /// How many tenants (the demo maps 29 of tenants 1-36; more are unregistered tenants)
    #[arg(long, default_value_t = 40)]
    pub(crate) tenants: u64,
    /// Records re-sent unchanged, per mille
    #[arg(long, default_value_t = 0)]
    pub(crate) duplicates: u32,
    /// Records sent out of hour order, per mille
    #[arg(long, default_value_t = 0)]
    pub(crate) late: u32,
    /// Malformed records, per mille
    #[arg(long, default_value_t = 0)]
    pub(crate) bad: u32,
    /// Output file (default: standard output)
    #[arg(long, short)]
    pub(crate) out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "STACKBILL_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key
    #[arg(long, env = "STACKBILL_TLS_CERT", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, env = "STACKBILL_TLS_KEY", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// The URL clients reach this server at (behind a proxy or load balancer), for the
    /// absolute nextLinks of the Azure-compatible API; default: from each request's Host
    #[arg(long, env = "STACKBILL_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
    /// Seconds a client may take to send a request's headers, or its first request on a
    /// connection, or to send the next one on a kept-alive connection, before it is
    /// disconnected
    #[arg(long, env = "STACKBILL_HEADER_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) header_timeout: u64,
    /// Collect every configured stack this often, in minutes (0: never; `stackbill collect`
    /// then does it); with several nodes, one node at a time collects each stack
    #[arg(
        long,
        env = "STACKBILL_COLLECT_EVERY",
        default_value_t = 60,
        value_name = "MINUTES"
    )]
    pub(crate) collect_every: u64,
    /// How long a node's claim on collecting a stack lasts unless renewed, in seconds: the
    /// pause before another node (or this one, restarted) takes over a stack whose collecting
    /// node died
    #[arg(long, env = "STACKBILL_COLLECT_LEASE", default_value_t = 120,
          value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub(crate) collect_lease: u64,
    /// Do not deliver webhooks from this node (another node delivers the outbox; events are
    /// stored all the same)
    #[arg(long, env = "STACKBILL_NO_WEBHOOK_DELIVERY")]
    pub(crate) no_webhook_delivery: bool,
    #[command(flatten)]
    pub(crate) db: DbArgs,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Address to listen on
    #[arg(long, env = "STACKBILL_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// The demo database file; an existing file at this path is replaced
    #[arg(long, default_value = "stackbill-demo.db")]
    pub(crate) db: PathBuf,
    /// Seed this PostgreSQL database instead of the file (postgres://...); it must hold no
    /// partners yet
    #[arg(long, value_name = "URL")]
    pub(crate) database_url: Option<String>,
    /// Seed the database and exit without serving
    #[arg(long)]
    pub(crate) no_serve: bool,
    /// Customer tenants to create (every fifth has no subscription of its own)
    #[arg(long, default_value_t = 36, value_parser = clap::value_parser!(u64).range(5..=100_000))]
    pub(crate) tenants: u64,
    /// Import this many generated records of last month's usage instead of collecting
    /// it from the demo's simulated stacks (0: no usage at all)
    #[arg(long, value_name = "N")]
    pub(crate) usage_records: Option<u64>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PartnerCommand {
    /// Create a partner, or rename one
    Add {
        /// Partner id (1-64 of A-Z a-z 0-9 . _ -)
        partner_id: PartnerId,
        /// Display name
        #[arg(long)]
        name: String,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one partner
    Show {
        /// Partner id
        partner_id: PartnerId,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List partners
    List {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show a partner's billing profile (what its invoices print about it), or change the
    /// fields given; each change is kept, and final invoices print the profile of their day
    Profile {
        /// Partner id
        partner_id: PartnerId,
        #[command(flatten)]
        fields: ProfileFields,
        /// Invoice numbers' prefix, 1-12 capital letters or digits (default INV): numbers
        /// read PREFIX-YYYY-NNNNNN, without gaps per partner and year
        #[arg(long)]
        invoice_prefix: Option<String>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// The fields of a billing profile every owner has; each flag given replaces that field.
#[derive(Debug, Args)]
pub(crate) struct ProfileFields {
    /// The legal name printed on invoices
    #[arg(long)]
    pub(crate) legal_name: Option<String>,
    /// The postal address, one flag per printed line (replaces every line)
    #[arg(long = "address", value_name = "LINE")]
    pub(crate) address: Vec<String>,
    /// ISO 3166-1 alpha-2 country code (DE, US, ...)
    #[arg(long)]
    pub(crate) country: Option<String>,
    /// Tax or VAT registration number
    #[arg(long)]
    pub(crate) tax_id: Option<String>,
    /// Remove these fields (legal-name, address, country, tax-id, invoice-prefix, tax-rate)
    #[arg(long, value_name = "FIELD", value_delimiter = ',')]
    pub(crate) unset: Vec<String>,
    /// Show the profile as it stood at this instant (RFC 3339) instead
    #[arg(long, value_parser = instant, conflicts_with_all = ["legal_name", "address", "country", "tax_id", "unset"])]
    pub(crate) as_of: Option<Timestamp>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SubscriptionCommand {
    /// Create or replace a billing subscription
    Add {
        /// Subscription id (GUID)
        subscription_id: SubscriptionId,
        /// CSP, CSPSS, EA or PAYG
        #[arg(long)]
        offer_type: OfferType,
        /// The partner a CSP or CSPSS subscription rolls up to
        #[arg(long)]
        partner: Option<PartnerId>,
        /// The customer's directory (CSP only)
        #[arg(long)]
        customer_tenant: Option<TenantId>,
        /// Display name
        #[arg(long, default_value = "")]
        display_name: String,
        /// Rate card used to price its usage
        #[arg(long, default_value = "default")]
        rate_card: RateCardName,
        /// Markup on the rate card in percent (may be negative)
        #[arg(long, default_value = "0", allow_hyphen_values = true)]
        markup_percent: Decimal,
        /// The first month (YYYY-MM) a change of the rate card or markup applies to; default:
        /// the current month. Re-pricing a final month becomes a Repricing adjustment
        #[arg(long, value_name = "YYYY-MM")]
        pricing_from: Option<Period>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one subscription
    Show {
        /// Subscription id
        subscription_id: SubscriptionId,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List subscriptions
    List {
        /// Only this partner's
        #[arg(long)]
        partner: Option<PartnerId>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show a subscription's billing profile (who its invoices are addressed to, and their
    /// tax rate), or change the fields given; final invoices keep the profile of their day
    Profile {
        /// Subscription id (GUID)
        subscription_id: SubscriptionId,
        #[command(flatten)]
        fields: ProfileFields,
        /// Tax rate in percent (0-100), applied once to each invoice's total
        #[arg(long)]
        tax_rate: Option<Decimal>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RegistrationCommand {
    /// Register a stack with its default subscription, or change its billing model
    Add {
        /// Registration name
        name: RegistrationName,
        /// The stack's cloud id (GUID)
        #[arg(long)]
        cloud_id: CloudId,
        /// The default subscription: pays for every tenant without its own
        #[arg(long)]
        subscription: SubscriptionId,
        /// PayAsYouUse, Capacity or Development
        #[arg(long, default_value = "PayAsYouUse")]
        billing_model: BillingModel,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one registration
    Show {
        /// Registration name
        name: RegistrationName,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List registrations
    List {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Delete a registration (its history is kept)
    Remove {
        /// Registration name
        name: RegistrationName,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TenantCommand {
    /// Map a tenant to its customer subscription (replaces its current mapping)
    Add {
        /// Registration name
        registration: RegistrationName,
        /// The tenant's directory id
        #[arg(long)]
        tenant: TenantId,
        /// The tenant's CSP subscription
        #[arg(long)]
        subscription: SubscriptionId,
        /// From when (RFC 3339; default now; may be backdated or scheduled)
        #[arg(long, value_parser = instant)]
        effective_from: Option<Timestamp>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// End a tenant's mapping: its usage goes to the default subscription again
    Remove {
        /// Registration name
        registration: RegistrationName,
        /// The customer subscription whose tenant is removed
        #[arg(long)]
        subscription: SubscriptionId,
        /// From when (RFC 3339; default now)
        #[arg(long, value_parser = instant)]
        effective_from: Option<Timestamp>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List the tenants mapped now, or at an instant
    List {
        /// Registration name
        registration: RegistrationName,
        /// The instant (RFC 3339; default now)
        #[arg(long, value_parser = instant)]
        as_of: Option<Timestamp>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Every mapping change of a registration, in recording order
    History {
        /// Registration name
        registration: RegistrationName,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum MeterCommand {
    /// List the meter catalog
    List {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Show one meter
    Show {
        /// Meter id (GUID, hyphens optional)
        meter_id: MeterId,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Add a meter, or override a built-in one's name, unit or category
    Add {
        /// Meter id (GUID)
        meter_id: MeterId,
        /// Display name
        #[arg(long)]
        name: String,
        /// What one unit is
        #[arg(long)]
        unit: String,
        /// The service it belongs to
        #[arg(long)]
        category: String,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// Whose rate card: a partner's own, or (without `--partner`) the shared one.
#[derive(Debug, Args)]
pub(crate) struct CardArgs {
    /// The rate card's name (subscriptions name the card they are priced with)
    pub(crate) name: RateCardName,
    /// The partner whose own card it is (default: the card shared by every partner)
    #[arg(long)]
    pub(crate) partner: Option<PartnerId>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RatecardCommand {
    /// Every rate card: owner, name, currency, meters priced
    List {
        /// As recorded at this instant
        #[arg(long, value_parser = instant)]
        as_of: Option<Timestamp>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// One rate card's prices, with the catalog's meter names and units
    Show {
        #[command(flatten)]
        card: CardArgs,
        /// As recorded at this instant
        #[arg(long, value_parser = instant)]
        as_of: Option<Timestamp>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Create an empty rate card in a currency; prices come with set-price or import
    Add {
        #[command(flatten)]
        card: CardArgs,
        /// ISO 4217 code (USD, EUR, JPY, ...)
        #[arg(long)]
        currency: String,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Set one meter's price from a date (a new version of the card; earlier prices stay)
    SetPrice {
        #[command(flatten)]
        card: CardArgs,
        /// The meter (GUID; `stackbill meter list`)
        meter: MeterId,
        /// The unit price from quantity 0
        #[arg(long, allow_hyphen_values = true)]
        price: Decimal,
        /// A further graduated tier, FROM=PRICE: the unit price of the quantity past FROM
        /// (repeat for more tiers)
        #[arg(long = "tier", value_name = "FROM=PRICE", value_parser = tier)]
        tiers: Vec<(Decimal, Decimal)>,
        /// Quantity free of charge each month
        #[arg(long, default_value = "0")]
        included: Decimal,
        /// From when the price applies (default: the beginning of time)
        #[arg(long, value_parser = instant)]
        effective_from: Option<Timestamp>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Replace a rate card's prices with a price list CSV (meterId, effectiveDate,
    /// includedQuantity, fromQuantity, unitPrice; one row per tier), as `export` writes it
    Import {
        #[command(flatten)]
        card: CardArgs,
        /// The CSV file (`-`: standard input)
        file: PathBuf,
        /// ISO 4217 code, for a card that does not exist yet (default: the card's)
        #[arg(long)]
        currency: Option<String>,
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Write a rate card as a price list CSV, with meter names and units
    Export {
        #[command(flatten)]
        card: CardArgs,
        /// As recorded at this instant
        #[arg(long, value_parser = instant)]
        as_of: Option<Timestamp>,
        /// The file to write (default: standard output)
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
}

/// A tier flag: `FROM=PRICE`.
fn tier(text: &str) -> Result<(Decimal, Decimal), String> {
    let parsed = text
        .split_once('=')
        .and_then(|(from, price)| Some((from.trim().parse().ok()?, price.trim().parse().ok()?)));
    parsed.ok_or_else(|| format!("'{text}' is not FROM=PRICE, e.g. 10000=0.0065"))
}
