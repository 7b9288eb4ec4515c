//! Startup and shutdown of a Bursar gateway: turning CLI flags, the environment and
//! `config.yaml` into [`Settings`], connecting and migrating the store, and serving the HTTP
//! application until a shutdown signal. The `bursar` binary and the test harness share this.

pub mod listener;

use anyhow::{Context, bail};
use bursar_core::config::{self, Config, ConfigProblem};
use bursar_core::keys::{Secret, generate_key};
use bursar_limits::{FailMode, Failover, MemoryLimiter, RedisLimiter, RedisOptions};
use bursar_providers::Router;
use bursar_server::{AppState, Cluster, RedisStatus, invalidation};
use bursar_store::{
    Backend, Ledger, LedgerOptions, RecordOptions, Store, StoreOptions, redact_url,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Everything needed to run a gateway, already resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config: Config,
    pub database_url: String,
    pub master_key: Secret,
    pub host: String,
    pub port: u16,
}

/// Where the master key came from, so startup can say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MasterKeySource {
    Config,
    StoredFile,
    Generated,
}

/// Reads and validates a config file. `lookup` reads environment variables.
pub fn load_config_file(
    path: &Path,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<config::Loaded> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    // Core's problems and the providers' (credentials, URLs) are reported together.
    let (mut loaded, mut problems) = config::load_all(&text, lookup);
    let (provider_problems, warnings) = Router::check(&loaded.config, lookup);
    problems.extend(provider_problems);
    loaded.warnings.extend(warnings);
    if !problems.is_empty() {
        return Err(ConfigErrors(problems).into());
    }
    Ok(loaded)
}

/// All problems of a config file, one per line.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "the config has {} problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The database URL: `DATABASE_URL` beats `general_settings.database_url`, which beats an
/// embedded SQLite file in the data directory.
pub fn database_url(
    config: &Config,
    lookup: &dyn Fn(&str) -> Option<String>,
    data_dir: &Path,
) -> String {
    lookup("DATABASE_URL")
        .filter(|u| !u.trim().is_empty())
        .or_else(|| config.general.database_url.clone())
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("bursar.db").display()))
}

/// The master key: from the config (or `LITELLM_MASTER_KEY`), else the one stored in
/// `data_dir/master_key`, else a new one written there (mode 0600).
pub fn master_key(config: &Config, data_dir: &Path) -> anyhow::Result<(Secret, MasterKeySource)> {
    if let Some(key) = &config.general.master_key {
        return Ok((key.clone(), MasterKeySource::Config));
    }
    let path = data_dir.join("master_key");
    match std::fs::read_to_string(&path) {
        Ok(text) if text.trim().starts_with("sk-") => {
            return Ok((Secret::new(text.trim()), MasterKeySource::StoredFile));
        }
        Ok(_) => bail!(
            "{} does not hold a master key starting with sk-; delete it to generate a new one",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let key = generate_key();
    write_private(&path, &key).with_context(|| {
        format!(
            "cannot store the generated master key in {}",
            path.display()
        )
    })?;
    Ok((Secret::new(key), MasterKeySource::Generated))
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")
}

/// Connects to the database and applies pending migrations.
pub async fn open_store(config: &Config, database_url: &str) -> anyhow::Result<Store> {
    if database_url.starts_with("sqlite:")
        && let Some(dir) = sqlite_parent_dir(database_url)
    {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let options = StoreOptions {
        max_connections: config.general.database_connection_pool_limit.unwrap_or(10),
        ..Default::default()
    };
    let store = Store::connect(database_url, &options).await?;
    store
        .migrate()
        .await
        .with_context(|| format!("cannot migrate {}", redact_url(database_url)))?;
    Ok(store)
}

/// The ledger writer's settings from `general_settings`. The spool defaults to a file next
/// to a SQLite database, else `bursar-spend.spool` in the working directory.
pub fn ledger_options(config: &Config, database_url: &str) -> LedgerOptions {
    let settings = &config.ledger;
    let spool = settings.spool_path.clone().unwrap_or_else(|| {
        sqlite_file(database_url).map_or_else(
            || PathBuf::from("bursar-spend.spool"),
            |db| PathBuf::from(format!("{}.spend-spool", db.display())),
        )
    });
    LedgerOptions {
        batch_size: settings.batch_size,
        flush_interval: settings.flush_interval,
        buffer_events: settings.buffer_events,
        record: RecordOptions {
            spend_logs: !settings.disable_spend_logs,
            totals: !settings.disable_spend_updates,
        },
        ..LedgerOptions::new(spool)
    }
}

fn sqlite_file(url: &str) -> Option<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next()?;
    (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
}

fn sqlite_parent_dir(url: &str) -> Option<PathBuf> {
    sqlite_file(url)?
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
}

/// How this instance shares state with the others: with Redis, shared admission counters
/// (under the configured fail mode) and invalidations over pub/sub; without it, per-instance
/// counters, and invalidations over PostgreSQL `LISTEN/NOTIFY` when the database is shared.
type ClusterParts = (
    Cluster,
    Option<invalidation::Channel>,
    Option<tokio::sync::mpsc::UnboundedReceiver<invalidation::Invalidation>>,
);

async fn cluster(config: &Config, store: &Store) -> anyhow::Result<ClusterParts> {
    let mut cluster = Cluster::single();
    let channel = match &config.redis {
        Some(redis) => {
            let url = redis.url.expose();
            // After a counter loss, every instance's ledger gets two flush intervals to write
            // what it admitted before budgets are seeded again from the store.
            let settle = config.ledger.flush_interval * 2 + std::time::Duration::from_millis(200);
            let shared = RedisLimiter::new(&RedisOptions {
                namespace: redis.namespace.clone(),
                timeout: redis.timeout,
                ..RedisOptions::new(url)
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .with_spend_source(
                std::sync::Arc::new(bursar_server::seeding::StoreSpend(store.clone())),
                settle,
                std::time::Duration::from_secs(30),
            );
            let mode = if redis.fail_open {
                FailMode::Open
            } else {
                FailMode::Closed
            };
            let health = shared.health();
            let limiter = Failover::new(shared, mode, MemoryLimiter::default());
            cluster.admission.redis = Some(RedisStatus {
                health,
                fail_mode: mode,
                fallbacks: limiter.fallback_counter(),
            });
            cluster.limiter = Arc::new(limiter);
            Some(invalidation::Channel::redis(url, &redis.namespace).map_err(anyhow::Error::msg)?)
        }
        None if store.backend() == Backend::Postgres => {
            let schema = store.schema().await?;
            Some(invalidation::Channel::Postgres {
                store: store.clone(),
                channel: invalidation::postgres_channel(schema.as_deref()),
            })
        }
        None => None,
    };
    let receiver = channel.as_ref().map(|_| {
        let (broadcast, rx) = invalidation::broadcast();
        cluster.broadcast = broadcast;
        rx
    });
    Ok((cluster, channel, receiver))
}

/// A running gateway.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Running {
    /// Stops accepting connections, lets in-flight requests finish, and waits.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tasks.wait().await;
    }

    /// Waits until the server stops (after the token given to [`start`] is cancelled).
    pub async fn wait(self) {
        self.tasks.wait().await;
    }
}

/// Binds, builds the application and serves it on a tracked task until `shutdown` fires.
pub async fn start(settings: Settings, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let store = open_store(&settings.config, &settings.database_url).await?;
    let router = Router::new(&settings.config, &bursar_providers::params::process_env)
        .map_err(ConfigErrors)?;
    // Building the tokenizer takes a moment; do it off the request path.
    tokio::task::spawn_blocking(bursar_providers::tokens::warm_up);
    let (ledger, ledger_writer) = Ledger::start(
        store.clone(),
        ledger_options(&settings.config, &settings.database_url),
    )
    .await;
    let (cluster, channel, invalidations) = cluster(&settings.config, &store).await?;
    let instance = cluster.instance_id.clone();
    let state = AppState::new(
        settings.config.clone(),
        store.clone(),
        router,
        Some(settings.master_key.clone()),
        Some(ledger),
        cluster,
    );
    let resets = bursar_server::run_budget_resets(state.clone(), shutdown.clone());
    let app = bursar_server::app(state.clone());
    let listener = TcpListener::bind((settings.host.as_str(), settings.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", settings.host, settings.port))?;
    let addr = listener.local_addr()?;
    let tasks = TaskTracker::new();
    tasks.spawn(resets);
    if let (Some(channel), Some(rx)) = (channel, invalidations) {
        tasks.spawn(invalidation::publish(
            channel.clone(),
            instance.clone(),
            rx,
            shutdown.clone(),
        ));
        let (subscribed, ready) = tokio::sync::oneshot::channel();
        tasks.spawn(invalidation::subscribe(
            state.clone(),
            channel,
            instance,
            subscribed,
            shutdown.clone(),
        ));
        // Serve once this instance hears invalidations; if the channel is down, serve anyway
        // (cached entries expire within a minute) and keep trying in the background.
        if tokio::time::timeout(std::time::Duration::from_secs(5), ready)
            .await
            .is_err()
        {
            tracing::warn!(
                "not subscribed to cache invalidations yet; serving anyway, retrying in the background"
            );
        }
    }
    let token = shutdown.clone();
    let drain = state.drain().clone();
    let connections = settings.config.connections.clone();
    let listening = state.clone();
    tasks.spawn(async move {
        listener::serve(listener, app, connections, token, drain, listening).await;
        // In-flight requests have finished: write (or spool) every spend event.
        ledger_writer.shutdown().await;
        store.close().await;
        tracing::info!("server stopped");
    });
    tasks.close();
    Ok(Running {
        addr,
        shutdown,
        tasks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_precedence() {
        let mut config = Config::default();
        let dir = Path::new("/data");
        assert_eq!(
            database_url(&config, &|_| None, dir),
            "sqlite:///data/bursar.db"
        );
        config.general.database_url = Some("postgres://cfg/db".into());
        assert_eq!(database_url(&config, &|_| None, dir), "postgres://cfg/db");
        let env = |n: &str| (n == "DATABASE_URL").then(|| "postgres://env/db".to_string());
        assert_eq!(database_url(&config, &env, dir), "postgres://env/db");
    }

    #[test]
    fn generated_master_key_is_stored_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::default();
        let (first, source) = master_key(&config, dir.path()).unwrap();
        assert_eq!(source, MasterKeySource::Generated);
        assert!(first.expose().starts_with("sk-"));
        let (second, source) = master_key(&config, dir.path()).unwrap();
        assert_eq!(source, MasterKeySource::StoredFile);
        assert_eq!(first, second);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("master_key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn configured_master_key_wins() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.general.master_key = Some(Secret::new("sk-configured"));
        let (key, source) = master_key(&config, dir.path()).unwrap();
        assert_eq!(
            (key.expose(), source),
            ("sk-configured", MasterKeySource::Config)
        );
        assert!(!dir.path().join("master_key").exists());
    }

    #[test]
    fn sqlite_parent_directories_are_found() {
        assert_eq!(
            sqlite_parent_dir("sqlite://./.bursar/bursar.db"),
            Some(PathBuf::from("./.bursar"))
        );
        assert_eq!(
            sqlite_parent_dir("sqlite:///tmp/x/a.db?mode=rwc"),
            Some(PathBuf::from("/tmp/x"))
        );
        assert_eq!(sqlite_parent_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_parent_dir("sqlite://a.db"), None);
    }
}
