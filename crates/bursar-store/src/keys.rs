//! Virtual keys. Rows are addressed by `token`, the SHA-256 hex of the raw key.

use crate::error::on_unique;
use crate::sql::SqlBuilder;
use crate::users::escape_like;
use crate::{StoreError, now_ms};
use bursar_core::NanoUsd;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

/// A key as stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyRow {
    pub token: String,
    pub key_name: Option<String>,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub organization_id: Option<String>,
    pub budget_id: Option<String>,
    pub models: Vec<String>,
    pub aliases: Value,
    pub metadata: Value,
    pub permissions: Value,
    pub allowed_routes: Vec<String>,
    pub blocked: bool,
    pub expires_at: Option<i64>,
    pub max_budget: Option<NanoUsd>,
    pub soft_budget: Option<NanoUsd>,
    pub spend: NanoUsd,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub model_max_budget: Value,
    pub model_spend: Value,
    pub rotation_count: i64,
    pub created_at: i64,
    pub created_by: Option<String>,
    pub updated_at: i64,
    pub updated_by: Option<String>,
    pub last_active_at: Option<i64>,
}

/// What a caller decides when creating a key; everything else starts at its default.
#[derive(Debug, Clone, Default)]
pub struct NewKey {
    pub token: String,
    pub key_name: Option<String>,
    pub key_alias: Option<String>,
    pub user_id: Option<String>,
    pub team_id: Option<String>,
    pub organization_id: Option<String>,
    pub budget_id: Option<String>,
    pub models: Vec<String>,
    pub aliases: Option<Value>,
    pub metadata: Option<Value>,
    pub permissions: Option<Value>,
    pub allowed_routes: Vec<String>,
    pub blocked: bool,
    pub expires_at: Option<i64>,
    pub max_budget: Option<NanoUsd>,
    pub soft_budget: Option<NanoUsd>,
    pub budget_duration: Option<String>,
    pub budget_reset_at: Option<i64>,
    pub max_parallel_requests: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub rpm_limit: Option<i64>,
    pub model_max_budget: Option<Value>,
    pub created_by: Option<String>,
    /// Starting spend (LiteLLM lets `/key/generate` set it).
    pub spend: NanoUsd,
}

pub struct KeyStore<'a> {
    pool: &'a AnyPool,
}

/// The key columns in decode order; a macro so queries stay `&'static str`.
macro_rules! key_columns {
    () => {
        "token, key_name, key_alias, user_id, team_id, organization_id, budget_id, models, \
    aliases, metadata, permissions, allowed_routes, blocked, expires_at, max_budget_nano, soft_budget_nano, \
    spend_nano, budget_duration, budget_reset_at, max_parallel_requests, tpm_limit, rpm_limit, \
    model_max_budget, model_spend, rotation_count, created_at, created_by, updated_at, updated_by, last_active_at"
    };
}

impl<'a> KeyStore<'a> {
    pub(crate) fn new(pool: &'a AnyPool) -> Self {
        KeyStore { pool }
    }

    /// Inserts a key; a duplicate token is a [`StoreError::Conflict`].
    pub async fn insert(&self, key: &NewKey) -> Result<KeyRow, StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_in(&mut tx, key).await?;
        tx.commit().await?;
        self.find_by_hash(&key.token)
            .await?
            .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Looks a key up by its hash.
    pub async fn find_by_hash(&self, token: &str) -> Result<Option<KeyRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM keys WHERE token = $1"
        ))
        .bind(token)
        .fetch_optional(self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// The keys with these hashes (missing ones are left out), in chunks of 500.
    pub async fn find_many(&self, tokens: &[String]) -> Result<Vec<KeyRow>, StoreError> {
        let mut out = Vec::with_capacity(tokens.len());
        for chunk in tokens.chunks(500) {
            let mut b = crate::sql::SqlBuilder::new(concat!(
                "SELECT ",
                key_columns!(),
                " FROM keys WHERE token IN ("
            ));
            b.bind_list(chunk.iter().cloned()).push(")");
            for row in b.build()?.fetch_all(self.pool).await? {
                out.push(decode(&row)?);
            }
        }
        Ok(out)
    }

    /// The hashes of every key a user owns.
    pub async fn tokens_of_user(&self, user_id: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query("SELECT token FROM keys WHERE user_id = $1 ORDER BY token")
            .bind(user_id)
            .fetch_all(self.pool)
            .await?;
        rows.iter()
            .map(|r| r.try_get("token").map_err(StoreError::from))
            .collect()
    }
}

/// A partial update: `None` leaves a field alone; `Some(None)` clears a nullable field.
#[derive(Debug, Clone, Default)]
pub struct KeyPatch {
    pub key_alias: Option<Option<String>>,
    pub user_id: Option<Option<String>>,
    pub team_id: Option<Option<String>>,
    pub organization_id: Option<Option<String>>,
    pub budget_id: Option<Option<String>>,
    pub models: Option<Vec<String>>,
    pub aliases: Option<Value>,
    pub metadata: Option<Value>,
    pub permissions: Option<Value>,
    pub allowed_routes: Option<Vec<String>>,
    pub blocked: Option<bool>,
    pub expires_at: Option<Option<i64>>,
    pub max_budget: Option<Option<NanoUsd>>,
    pub soft_budget: Option<Option<NanoUsd>>,
    pub spend: Option<NanoUsd>,
    pub budget_duration: Option<Option<String>>,
    pub budget_reset_at: Option<Option<i64>>,
    pub max_parallel_requests: Option<Option<i64>>,
    pub tpm_limit: Option<Option<i64>>,
    pub rpm_limit: Option<Option<i64>>,
    pub model_max_budget: Option<Value>,
    pub updated_by: Option<String>,
}

/// Filters and page of `/key/list`.
#[derive(Debug, Clone, Default)]
pub struct KeyQuery {
    pub user_id: Option<String>,
    /// Keys owned by `user_id` **or** in one of these teams.
    pub or_team_ids: Vec<String>,
    pub team_id: Option<String>,
    pub organization_id: Option<String>,
    pub key_alias: Option<String>,
    pub token: Option<String>,
    pub sort: KeySort,
    pub descending: bool,
    /// 1-based.
    pub page: u32,
    pub size: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum KeySort {
    #[default]
    CreatedAt,
    UpdatedAt,
    Spend,
    MaxBudget,
    Token,
    KeyAlias,
}

impl KeySort {
    fn column(self) -> &'static str {
        match self {
            KeySort::CreatedAt => "created_at",
            KeySort::UpdatedAt => "updated_at",
            KeySort::Spend => "spend_nano",
            KeySort::MaxBudget => "max_budget_nano",
            KeySort::Token => "token",
            KeySort::KeyAlias => "key_alias",
        }
    }
}

impl KeyStore<'_> {
    pub async fn find_by_alias(&self, alias: &str) -> Result<Option<KeyRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM keys WHERE key_alias = $1"
        ))
        .bind(alias)
        .fetch_optional(self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Applies a patch and returns the new row, or `None` when the key does not exist.
    pub async fn update(
        &self,
        token: &str,
        patch: &KeyPatch,
    ) -> Result<Option<KeyRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let found = update_in(&mut tx, token, patch).await?;
        tx.commit().await?;
        if !found {
            return Ok(None);
        }
        self.find_by_hash(token).await
    }
}

/// Applies a key patch inside a caller's transaction; false when the key does not exist.
async fn update_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    token: &str,
    patch: &KeyPatch,
) -> Result<bool, StoreError> {
    {
        let mut q = SqlBuilder::new("UPDATE keys SET updated_at = ");
        q.bind(now_ms());
        let json = |v: &Value| v.to_string();
        let list = |v: &Vec<String>| Value::from(v.clone()).to_string();
        let money = |v: &Option<NanoUsd>| v.map(|m| m.0);
        q.set_if("key_alias", patch.key_alias.clone())
            .set_if("user_id", patch.user_id.clone())
            .set_if("team_id", patch.team_id.clone())
            .set_if("organization_id", patch.organization_id.clone())
            .set_if("budget_id", patch.budget_id.clone())
            .set_if("models", patch.models.as_ref().map(list))
            .set_if("aliases", patch.aliases.as_ref().map(json))
            .set_if("metadata", patch.metadata.as_ref().map(json))
            .set_if("permissions", patch.permissions.as_ref().map(json))
            .set_if("allowed_routes", patch.allowed_routes.as_ref().map(list))
            .set_if("blocked", patch.blocked.map(i64::from))
            .set_if("expires_at", patch.expires_at)
            .set_if("max_budget_nano", patch.max_budget.as_ref().map(money))
            .set_if("soft_budget_nano", patch.soft_budget.as_ref().map(money))
            .set_if("spend_nano", patch.spend.map(|m| m.0))
            .set_if("budget_duration", patch.budget_duration.clone())
            .set_if("budget_reset_at", patch.budget_reset_at)
            .set_if("max_parallel_requests", patch.max_parallel_requests)
            .set_if("tpm_limit", patch.tpm_limit)
            .set_if("rpm_limit", patch.rpm_limit)
            .set_if(
                "model_max_budget",
                patch.model_max_budget.as_ref().map(json),
            )
            .set_if("updated_by", patch.updated_by.clone());
        q.push(" WHERE token = ");
        q.bind(token.to_string());
        let done = q
            .build()?
            .execute(&mut **tx)
            .await
            .map_err(on_unique("key_alias"))?;
        Ok(done.rows_affected() > 0)
    }
}

impl KeyStore<'_> {
    /// Replaces a key's secret: the row moves to `new_token`, keeping everything else, then
    /// `patch` applies. With `grace_until`, the old secret keeps resolving to the key until
    /// then. One transaction.
    pub async fn rotate(
        &self,
        old_token: &str,
        new_token: &str,
        key_name: &str,
        updated_by: Option<&str>,
        grace_until: Option<i64>,
        patch: &KeyPatch,
    ) -> Result<Option<KeyRow>, StoreError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE keys SET token = $1, key_name = $2, rotation_count = rotation_count + 1, updated_at = $3, updated_by = $4 WHERE token = $5",
        )
        .bind(new_token)
        .bind(key_name)
        .bind(now)
        .bind(updated_by)
        .bind(old_token)
        .execute(&mut *tx)
        .await
        .map_err(on_unique("key"))?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        // Earlier secrets of this key now lead to the new one.
        sqlx::query("UPDATE deprecated_keys SET active_token = $1 WHERE active_token = $2")
            .bind(new_token)
            .bind(old_token)
            .execute(&mut *tx)
            .await?;
        if let Some(revoke_at) = grace_until {
            sqlx::query(
                "INSERT INTO deprecated_keys (token, active_token, revoke_at, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (token) DO UPDATE SET active_token = excluded.active_token, revoke_at = excluded.revoke_at",
            )
            .bind(old_token)
            .bind(new_token)
            .bind(revoke_at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        update_in(&mut tx, new_token, patch).await?;
        tx.commit().await?;
        self.find_by_hash(new_token).await
    }

    /// The active key an old (rotated) secret still stands for, with its revocation time.
    pub async fn find_by_deprecated_hash(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Option<(KeyRow, i64)>, StoreError> {
        let row = sqlx::query("SELECT active_token, revoke_at FROM deprecated_keys WHERE token = $1 AND revoke_at > $2")
            .bind(token)
            .bind(now)
            .fetch_optional(self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let active: String = row.try_get("active_token")?;
        let revoke_at: i64 = row.try_get("revoke_at")?;
        Ok(self
            .find_by_hash(&active)
            .await?
            .map(|key| (key, revoke_at)))
    }

    /// Deletes every listed key in one transaction; returns how many rows went.
    pub async fn delete_many(&self, tokens: &[String]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut removed = 0;
        for token in tokens {
            sqlx::query("DELETE FROM deprecated_keys WHERE active_token = $1")
                .bind(token)
                .execute(&mut *tx)
                .await?;
            removed += sqlx::query("DELETE FROM keys WHERE token = $1")
                .bind(token)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }

    /// One page of keys and the total count for the same filters.
    pub async fn list(&self, query: &KeyQuery) -> Result<(Vec<KeyRow>, u64), StoreError> {
        fn filters(q: &mut SqlBuilder, query: &KeyQuery) {
            q.push(" WHERE 1 = 1");
            if let Some(user) = &query.user_id {
                if query.or_team_ids.is_empty() {
                    q.push(" AND user_id = ").bind(user.clone());
                } else {
                    q.push(" AND (user_id = ")
                        .bind(user.clone())
                        .push(" OR team_id IN (");
                    q.bind_list(query.or_team_ids.iter().cloned()).push("))");
                }
            }
            if let Some(team) = &query.team_id {
                q.push(" AND team_id = ").bind(team.clone());
            }
            if let Some(org) = &query.organization_id {
                q.push(" AND organization_id = ").bind(org.clone());
            }
            if let Some(alias) = &query.key_alias {
                q.push(" AND key_alias = ").bind(alias.clone());
            }
            if let Some(token) = &query.token {
                q.push(" AND token = ").bind(token.clone());
            }
        }
        let mut count = SqlBuilder::new("SELECT COUNT(*) AS n FROM keys");
        filters(&mut count, query);
        let total: i64 = count.build()?.fetch_one(self.pool).await?.try_get("n")?;

        let mut q = SqlBuilder::new(concat!("SELECT ", key_columns!(), " FROM keys"));
        filters(&mut q, query);
        let direction = if query.descending { " DESC" } else { " ASC" };
        // The token tiebreak makes the order total, so pages never overlap or skip rows.
        q.push(" ORDER BY ")
            .push(query.sort.column())
            .push(direction)
            .push(", token")
            .push(direction);
        let size = query.size.max(1);
        q.push(" LIMIT ").bind(i64::from(size));
        q.push(" OFFSET ")
            .bind(i64::from(query.page.max(1) - 1) * i64::from(size));
        let rows = q.build()?.fetch_all(self.pool).await?;
        let keys = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
        Ok((keys, u64::try_from(total).unwrap_or(0)))
    }

    /// Sets a key's spend to `to` if it is still `expected` (a spend settled since it was read
    /// is never overwritten); `false` when it changed meanwhile or the key is gone.
    pub async fn reset_spend(
        &self,
        token: &str,
        expected: NanoUsd,
        to: NanoUsd,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE keys SET spend_nano = $1, updated_at = $2 WHERE token = $3 AND spend_nano = $4",
        )
        .bind(to.0)
        .bind(now_ms())
        .bind(token)
        .bind(expected.0)
        .execute(self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a key; returns whether a row was removed.
    pub async fn delete_by_hash(&self, token: &str) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM deprecated_keys WHERE active_token = $1")
            .bind(token)
            .execute(self.pool)
            .await?;
        let done = sqlx::query("DELETE FROM keys WHERE token = $1")
            .bind(token)
            .execute(self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

/// Inserts a key inside a caller's transaction.
pub(crate) async fn insert_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &NewKey,
) -> Result<(), StoreError> {
    let now = now_ms();
    let json = |v: &Option<Value>| {
        v.as_ref()
            .map(Value::to_string)
            .unwrap_or_else(|| "{}".to_string())
    };
    let list = |v: &Vec<String>| Value::from(v.clone()).to_string();
    sqlx::query(
            "INSERT INTO keys (token, key_name, key_alias, user_id, team_id, organization_id, budget_id, models, \
             aliases, metadata, permissions, allowed_routes, blocked, expires_at, max_budget_nano, soft_budget_nano, \
             budget_duration, budget_reset_at, max_parallel_requests, tpm_limit, rpm_limit, model_max_budget, \
             created_at, created_by, updated_at, updated_by, spend_nano) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, \
             $22, $23, $24, $25, $26, $27)",
        )
        .bind(&key.token)
        .bind(&key.key_name)
        .bind(&key.key_alias)
        .bind(&key.user_id)
        .bind(&key.team_id)
        .bind(&key.organization_id)
        .bind(&key.budget_id)
        .bind(list(&key.models))
        .bind(json(&key.aliases))
        .bind(json(&key.metadata))
        .bind(json(&key.permissions))
        .bind(list(&key.allowed_routes))
        .bind(i64::from(key.blocked))
        .bind(key.expires_at)
        .bind(key.max_budget.map(|m| m.0))
        .bind(key.soft_budget.map(|m| m.0))
        .bind(&key.budget_duration)
        .bind(key.budget_reset_at)
        .bind(key.max_parallel_requests)
        .bind(key.tpm_limit)
        .bind(key.rpm_limit)
        .bind(json(&key.model_max_budget))
        .bind(now)
        .bind(&key.created_by)
        .bind(now)
        .bind(&key.created_by)
        .bind(key.spend.0)
        .execute(&mut **tx)
        .await
        .map_err(on_unique("key"))?;
    Ok(())
}

fn decode(row: &AnyRow) -> Result<KeyRow, StoreError> {
    Ok(KeyRow {
        token: row.try_get("token")?,
        key_name: row.try_get("key_name")?,
        key_alias: row.try_get("key_alias")?,
        user_id: row.try_get("user_id")?,
        team_id: row.try_get("team_id")?,
        organization_id: row.try_get("organization_id")?,
        budget_id: row.try_get("budget_id")?,
        models: json_column(row, "models")?,
        aliases: json_column(row, "aliases")?,
        metadata: json_column(row, "metadata")?,
        permissions: json_column(row, "permissions")?,
        allowed_routes: json_column(row, "allowed_routes")?,
        blocked: row.try_get::<i64, _>("blocked")? != 0,
        expires_at: row.try_get("expires_at")?,
        max_budget: row
            .try_get::<Option<i64>, _>("max_budget_nano")?
            .map(NanoUsd),
        soft_budget: row
            .try_get::<Option<i64>, _>("soft_budget_nano")?
            .map(NanoUsd),
        spend: NanoUsd(row.try_get("spend_nano")?),
        budget_duration: row.try_get("budget_duration")?,
        budget_reset_at: row.try_get("budget_reset_at")?,
        max_parallel_requests: row.try_get("max_parallel_requests")?,
        tpm_limit: row.try_get("tpm_limit")?,
        rpm_limit: row.try_get("rpm_limit")?,
        model_max_budget: json_column(row, "model_max_budget")?,
        model_spend: json_column(row, "model_spend")?,
        rotation_count: row.try_get("rotation_count")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        updated_at: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
        last_active_at: row.try_get("last_active_at")?,
    })
}

/// Reads a JSON text column into any deserializable type.
pub(crate) fn json_column<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &'static str,
) -> Result<T, StoreError> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|source| StoreError::CorruptJson { column, source })
}

/// A nullable JSON text column.
pub(crate) fn optional_json_column<T: serde::de::DeserializeOwned>(
    row: &AnyRow,
    column: &'static str,
) -> Result<Option<T>, StoreError> {
    let text: Option<String> = row.try_get(column)?;
    text.map(|t| serde_json::from_str(&t))
        .transpose()
        .map_err(|source| StoreError::CorruptJson { column, source })
}

/// What `/key/aliases` lists: the distinct non-empty aliases, filtered and paged.
#[derive(Debug, Clone, Default)]
pub struct AliasQuery {
    /// Only keys this user owns, or keys of these teams (a non-admin's own view).
    pub visible_to: Option<(String, Vec<String>)>,
    pub team_id: Option<String>,
    /// Case-insensitive substring of the alias.
    pub search: Option<String>,
    /// 1-based.
    pub page: u32,
    pub size: u32,
}

impl KeyStore<'_> {
    /// Key aliases in ascending order, and how many there are in all.
    pub async fn aliases(&self, query: &AliasQuery) -> Result<(Vec<String>, u64), StoreError> {
        fn filters(q: &mut SqlBuilder, query: &AliasQuery) {
            q.push(" WHERE key_alias IS NOT NULL AND key_alias <> ''");
            if let Some((user, teams)) = &query.visible_to {
                q.push(" AND (user_id = ").bind(user.clone());
                if !teams.is_empty() {
                    q.push(" OR team_id IN (")
                        .bind_list(teams.iter().cloned())
                        .push(")");
                }
                q.push(")");
            }
            if let Some(team) = &query.team_id {
                q.push(" AND team_id = ").bind(team.clone());
            }
            if let Some(text) = &query.search {
                q.push(" AND lower(key_alias) LIKE ")
                    .bind(format!("%{}%", escape_like(&text.to_lowercase())))
                    .push(" ESCAPE '\\'");
            }
        }
        let mut count = SqlBuilder::new("SELECT COUNT(DISTINCT key_alias) AS n FROM keys");
        filters(&mut count, query);
        let total: i64 = count.build()?.fetch_one(self.pool).await?.try_get("n")?;
        let mut q = SqlBuilder::new("SELECT DISTINCT key_alias FROM keys");
        filters(&mut q, query);
        let size = query.size.max(1);
        q.push(" ORDER BY key_alias LIMIT ").bind(i64::from(size));
        q.push(" OFFSET ")
            .bind(i64::from(query.page.max(1) - 1) * i64::from(size));
        let rows = q.build()?.fetch_all(self.pool).await?;
        let aliases = rows
            .iter()
            .map(|r| r.try_get::<String, _>("key_alias"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((aliases, u64::try_from(total).unwrap_or(0)))
    }
}
