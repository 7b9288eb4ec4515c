//! The `bursar` command: `serve`, `migrate` and `check-config`.

use bursar::{MasterKeySource, Settings, database_url, load_config_file, master_key, open_store};
use bursar_core::config::{self, Config};
use bursar_store::redact_url;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "bursar",
    version,
    about = "A fast, multi-tenant LLM gateway, wire-compatible with the LiteLLM proxy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Without a config file, starts a demo with a built-in local model.
    Serve {
        /// LiteLLM-format config.yaml.
        #[arg(long, env = "CONFIG_FILE_PATH")]
        config: Option<PathBuf>,
        #[arg(long, default_value = "0.0.0.0")]
        host: String,
        #[arg(long, default_value_t = 4000)]
        port: u16,
        /// Where the embedded database and a generated master key live.
        #[arg(long, env = "BURSAR_DATA_DIR", default_value = ".bursar")]
        data_dir: PathBuf,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        #[arg(long, env = "CONFIG_FILE_PATH")]
        config: Option<PathBuf>,
        #[arg(long, env = "BURSAR_DATA_DIR", default_value = ".bursar")]
        data_dir: PathBuf,
    },
    /// Validate a config file: prints every problem and exits non-zero if there is any.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the OpenAPI 3.1 document (what `GET /openapi.json` serves) and exit.
    Openapi,
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cli.command {
        Command::CheckConfig { config } => Ok(check_config(&config)),
        Command::Openapi => {
            let doc = bursar_server::openapi_document();
            println!("{}", doc.to_pretty_json()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { config, data_dir } => {
            init_tracing(false);
            let config = config_or_default(config.as_deref())?;
            let url = database_url(&config, &env_lookup, &data_dir);
            let store = open_store(&config, &url).await?;
            store.close().await;
            println!("database {} is up to date", redact_url(&url));
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve {
            config: path,
            host,
            port,
            data_dir,
        } => {
            let zero_config = path.is_none();
            let mut config = config_or_default(path.as_deref())?;
            init_tracing(config.json_logs);
            if zero_config {
                config.add_demo_model();
            }
            let (key, source) = master_key(&config, &data_dir)?;
            let database_url = database_url(&config, &env_lookup, &data_dir);
            let redis = config.redis.clone();
            let settings = Settings {
                config,
                database_url: database_url.clone(),
                master_key: key.clone(),
                host,
                port,
            };
            let shutdown = CancellationToken::new();
            let running = bursar::start(settings, shutdown.clone()).await?;
            announce(&running.addr, &database_url, &key, source, zero_config);
            if let Some(redis) = &redis {
                println!(
                    "admission: shared through Redis {} ({})",
                    redact_url(redis.url.expose()),
                    if redis.fail_open {
                        "fail_open"
                    } else {
                        "fail_closed"
                    }
                );
            }
            tokio::spawn(wait_for_signal(shutdown));
            running.wait().await;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn config_or_default(path: Option<&Path>) -> anyhow::Result<Config> {
    let Some(path) = path else {
        return config::load("", &env_lookup)
            .map(|l| l.config)
            .map_err(|p| bursar::ConfigErrors(p).into());
    };
    let loaded = load_config_file(path, &env_lookup)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(loaded.config)
}

fn check_config(path: &Path) -> ExitCode {
    match load_config_file(path, &env_lookup) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                println!("warning: {warning}");
            }
            println!(
                "{}: OK ({} model deployment(s))",
                path.display(),
                loaded.config.models.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprint!("{}: {e:#}", path.display());
            if !format!("{e:#}").ends_with('\n') {
                eprintln!();
            }
            ExitCode::FAILURE
        }
    }
}

fn announce(
    addr: &std::net::SocketAddr,
    database_url: &str,
    key: &bursar_core::keys::Secret,
    source: MasterKeySource,
    zero_config: bool,
) {
    println!(
        "Bursar {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    println!("database: {}", redact_url(database_url));
    match source {
        MasterKeySource::Generated => println!(
            "master key (generated and stored in the data directory): {}",
            key.expose()
        ),
        MasterKeySource::StoredFile => {
            println!("master key: {} (from the data directory)", key.expose())
        }
        MasterKeySource::Config => println!("master key: from the config / LITELLM_MASTER_KEY"),
    }
    if zero_config {
        println!("demo model: \"demo\" answers locally; try:");
        println!(
            "  curl http://localhost:{}/v1/chat/completions -H 'Authorization: Bearer <master key>' -H 'Content-Type: application/json' -d '{{\"model\":\"demo\",\"messages\":[{{\"role\":\"user\",\"content\":\"hi\"}}]}}'",
            addr.port()
        );
    }
}

fn init_tracing(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn wait_for_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
    shutdown.cancel();
}
