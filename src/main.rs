//! The `tidings` command: `serve`, `tenant create|rotate-secret`, `apikey create|revoke`, `openapi`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tidings::app::App;
use tidings::config::Config;
use tidings::domain::ids::TenantId;
use tidings::service::auth;
use tidings::store;

/// mimalloc: less time in the allocator on the hot paths (frames, JSON, buffers) and
/// less fragmentation than glibc's per-thread arenas for many small, long-lived
/// connection objects (measured: loadtests/RESULTS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "tidings", version, about = "Realtime notification hub")]
struct Cli {
    /// Configuration file layered over the defaults (config/tidings.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub.
    Serve,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage API keys.
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant; prints its API key and JWT secret once.
    Create {
        id: String,
        #[arg(long)]
        name: String,
        /// Print one JSON object {"tenant_id", "api_key", "jwt_secret"}.
        #[arg(long)]
        json: bool,
    },
    /// Give a tenant a new JWT signing secret; prints it once. Tokens of the old
    /// secret stay valid for the overlap (default: auth.max_token_ttl_secs).
    RotateSecret {
        id: String,
        /// Seconds the old secret keeps verifying tokens (0: at once, e.g. after a leak).
        #[arg(long)]
        overlap_secs: Option<u64>,
        /// Print one JSON object {"tenant_id", "kid", "jwt_secret", "previous_valid_until"}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ApikeyCommand {
    /// Create a key for a tenant; prints it once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke one key of a tenant by its prefix (the first 12 characters, as
    /// printed at creation; exact and case-sensitive).
    Revoke {
        #[arg(long)]
        tenant: String,
        key_prefix: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tidings: {e}");
            return ExitCode::from(2);
        }
    };
    tidings::telemetry::init_logs(&config.log_level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tidings: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(config).await,
        Command::Openapi => {
            println!(
                "{}",
                serde_json::to_string_pretty(&tidings::http::openapi())?
            );
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::Create { id, name, json },
        } => {
            let store = store::open(&config.store_options()).await?;
            let tenant = TenantId::parse(&id).map_err(|e| anyhow::anyhow!("tenant id: {e}"))?;
            let (key, secret) =
                auth::create_tenant(store.as_ref(), &tenant, &name, chrono::Utc::now())
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"tenant_id": tenant.as_str(), "api_key": key.key, "jwt_secret": secret})
                );
            } else {
                println!(
                    "tenant_id: {tenant}\napi_key: {}\njwt_secret: {secret}",
                    key.key
                );
            }
            Ok(())
        }
        Command::Apikey {
            command: ApikeyCommand::Create { tenant, json },
        } => {
            let store = store::open(&config.store_options()).await?;
            let tenant = TenantId::parse(&tenant).map_err(|e| anyhow::anyhow!("tenant id: {e}"))?;
            if !store.tenant_exists(&tenant).await? {
                anyhow::bail!("no tenant {tenant}");
            }
            let key = auth::generate_api_key();
            store
                .insert_api_key(&tenant, &key.prefix, &key.hash, chrono::Utc::now())
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"tenant_id": tenant.as_str(), "api_key": key.key, "prefix": key.prefix})
                );
            } else {
                println!("api_key: {}\nprefix: {}", key.key, key.prefix);
            }
            Ok(())
        }
        Command::Apikey {
            command: ApikeyCommand::Revoke { tenant, key_prefix },
        } => {
            let store = store::open(&config.store_options()).await?;
            let tenant = TenantId::parse(&tenant).map_err(|e| anyhow::anyhow!("tenant id: {e}"))?;
            if !store
                .revoke_api_key(&tenant, &key_prefix, chrono::Utc::now())
                .await?
            {
                anyhow::bail!("tenant {tenant} has no active key with prefix {key_prefix}");
            }
            println!("revoked: 1");
            Ok(())
        }
        Command::Tenant {
            command:
                TenantCommand::RotateSecret {
                    id,
                    overlap_secs,
                    json,
                },
        } => {
            let store = store::open(&config.store_options()).await?;
            let tenant = TenantId::parse(&id).map_err(|e| anyhow::anyhow!("tenant id: {e}"))?;
            let overlap = overlap_secs.unwrap_or(config.auth.max_token_ttl_secs);
            let now = chrono::Utc::now();
            let r = auth::rotate_secret(store.as_ref(), &tenant, Duration::from_secs(overlap), now)
                .await
                .map_err(|e| match e {
                    tidings::service::ServiceError::NotFound => {
                        anyhow::anyhow!("no tenant {tenant}")
                    }
                    other => anyhow::anyhow!("{other}"),
                })?;
            let until = r.previous_valid_until.to_rfc3339();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"tenant_id": tenant.as_str(), "kid": r.kid, "jwt_secret": r.jwt_secret, "previous_valid_until": until})
                );
            } else {
                println!(
                    "tenant_id: {tenant}\nkid: {}\njwt_secret: {}\nprevious_valid_until: {until}",
                    r.kid, r.jwt_secret
                );
            }
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(config).await?;
    if let Some(dev) = &app.created_dev_credentials {
        // Shown once: only the key's hash is stored.
        println!("development tenant created (shown once; keep these):");
        println!(
            "tenant_id: {}\napi_key: {}\njwt_secret: {}",
            dev.tenant, dev.api_key, dev.jwt_secret
        );
    }
    println!("listening: {}", app.local_addr());
    app.run_until_stopped(shutdown_signal()).await
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
