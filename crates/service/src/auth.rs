//! Accounts, passwords (argon2id), bearer tokens and the first administrator.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    TransactionTrait,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sportello_domain::Role;
use sportello_store::entities::{auth_token, user};
use uuid::Uuid;

use crate::error::Problems;
use crate::util::{bounded, now};
use crate::{Actor, App, ServiceError};

/// Shortest password accepted for an account.
pub const MIN_PASSWORD_LEN: usize = 10;

/// A user account as the API shows it (never with its password hash).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub name: String,
    #[schema(value_type = Vec<String>)]
    pub roles: Vec<Role>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
}

/// A new account.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    pub username: String,
    pub password: String,
    pub name: String,
    pub roles: Vec<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password", &"***")
            .field("roles", &self.roles)
            .finish()
    }
}

/// Changes to an account; absent fields stay as they are.
#[derive(Default, Deserialize, utoipa::ToSchema)]
pub struct UserUpdate {
    pub name: Option<String>,
    pub roles: Option<Vec<String>>,
    pub active: Option<bool>,
    pub password: Option<String>,
}

/// A successful sign-in.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Session {
    /// Send as `Authorization: Bearer <token>`; shown once, stored only as a hash.
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: UserView,
}

fn parse_roles(raw: &str) -> Vec<Role> {
    raw.split(',')
        .filter_map(|r| Role::parse(r.trim()).ok())
        .collect()
}

fn view(u: user::Model) -> UserView {
    UserView {
        id: u.id,
        roles: parse_roles(&u.roles),
        username: u.username,
        name: u.name,
        active: u.active,
        created_at: u.created_at,
    }
}

fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ServiceError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| ServiceError::Internal(format!("no randomness: {e}")))?;
    Ok(buf)
}

/// A random password for the first administrator, shown once.
pub fn generate_password() -> Result<String, ServiceError> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<15>()?))
}

/// Hashes a password with argon2id on a blocking thread (it takes tens of milliseconds).
pub async fn hash_password(password: String) -> Result<String, ServiceError> {
    let salt_bytes = random_bytes::<16>()?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&salt_bytes)
            .map_err(|e| ServiceError::Internal(format!("salt: {e}")))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ServiceError::Internal(format!("hashing: {e}")))
    })
    .await
    .map_err(|e| ServiceError::Internal(format!("hashing task: {e}")))?
}

/// A real hash of a throw-away password, computed once.
async fn dummy_hash() -> Result<String, ServiceError> {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DUMMY
        .get_or_try_init(|| hash_password("not-a-password".into()))
        .await
        .cloned()
}

async fn verify_password(password: String, hash: String) -> bool {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|h| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &h)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

fn validate_username(p: &mut Problems, username: &str) {
    let ok = (3..=32).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if !ok {
        p.add(
            "username",
            "must be 3–32 characters of lowercase letters, digits, '.', '_' or '-'",
        );
    }
}

fn validate_password(p: &mut Problems, field: &str, password: &str) {
    if password.chars().count() < MIN_PASSWORD_LEN {
        p.add(
            field,
            format!("must be at least {MIN_PASSWORD_LEN} characters"),
        );
    } else if password.len() > 1024 {
        p.add(field, "must be at most 1024 bytes");
    }
}

fn validate_roles(p: &mut Problems, roles: &[String]) -> Vec<Role> {
    if roles.is_empty() {
        p.add("roles", "at least one role is needed");
    }
    let mut out = Vec::new();
    for (i, r) in roles.iter().enumerate() {
        if let Some(role) = p.check(&format!("roles[{i}]"), Role::parse(r)) {
            out.push(role);
        }
    }
    out.sort();
    out.dedup();
    out
}

fn roles_string(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// How long a verified token is trusted from memory before the database is asked again.
///
/// Logout and account changes evict at once on the instance that handles them; other
/// instances notice within this time.
const TOKEN_CACHE_TTL: Duration = Duration::seconds(30);
const TOKEN_CACHE_MAX: usize = 10_000;

/// Verified tokens, so an authenticated request costs no database read.
#[derive(Default)]
pub(crate) struct TokenCache(
    std::sync::Mutex<std::collections::HashMap<String, (Actor, DateTime<Utc>)>>,
);

impl TokenCache {
    fn get(&self, hash: &str, now: DateTime<Utc>) -> Option<Actor> {
        let map = self.0.lock().ok()?;
        map.get(hash)
            .filter(|(_, until)| *until > now)
            .map(|(a, _)| a.clone())
    }

    fn put(&self, hash: String, actor: Actor, until: DateTime<Utc>) {
        if let Ok(mut map) = self.0.lock() {
            if map.len() >= TOKEN_CACHE_MAX {
                let now = Utc::now();
                map.retain(|_, (_, u)| *u > now);
                if map.len() >= TOKEN_CACHE_MAX {
                    map.clear();
                }
            }
            map.insert(hash, (actor, until));
        }
    }

    fn evict(&self, hash: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(hash);
        }
    }

    fn evict_user(&self, user: Uuid) {
        if let Ok(mut map) = self.0.lock() {
            map.retain(|_, (a, _)| a.id != user);
        }
    }
}

impl App {
    /// Creates the `admin` account when there is no account at all.
    ///
    /// Returns the generated password when none was given, so the caller can show it once.
    pub async fn bootstrap_admin(
        &self,
        password: Option<String>,
    ) -> Result<Option<String>, ServiceError> {
        if user::Entity::find().count(&self.db().read).await? > 0 {
            return Ok(None);
        }
        let (password, generated) = match password.filter(|p| !p.is_empty()) {
            Some(p) => (p, false),
            None => (generate_password()?, true),
        };
        let mut p = Problems::default();
        validate_password(&mut p, "SPORTELLO_ADMIN_PASSWORD", &password);
        p.finish()?;
        self.insert_user("admin", "Amministratore", &[Role::Admin], &password, None)
            .await?;
        Ok(generated.then_some(password))
    }

    async fn insert_user(
        &self,
        username: &str,
        name: &str,
        roles: &[Role],
        password: &str,
        actor: Option<Uuid>,
    ) -> Result<UserView, ServiceError> {
        let hash = hash_password(password.to_owned()).await?;
        let at = now();
        let model = user::Model {
            id: Uuid::now_v7(),
            username: username.to_owned(),
            name: name.to_owned(),
            password_hash: hash,
            roles: roles_string(roles),
            active: true,
            created_at: at,
            updated_at: at,
        };
        let txn = self.db().write.begin().await?;
        let am: user::ActiveModel = model.clone().into();
        if let Err(e) = user::Entity::insert(am).exec_without_returning(&txn).await {
            return Err(if sportello_store::error::is_unique_violation(&e) {
                ServiceError::Conflict(format!("username '{username}' is already taken"))
            } else {
                e.into()
            });
        }
        crate::audit::record(
            &txn,
            actor,
            "user.created",
            "user",
            Some(model.id),
            Some(serde_json::json!({ "roles": model.roles })),
        )
        .await?;
        txn.commit().await?;
        Ok(view(model))
    }

    /// Creates an account (admins only).
    pub async fn create_user(
        &self,
        actor: &Actor,
        input: NewUser,
    ) -> Result<UserView, ServiceError> {
        actor.require_any(&[Role::Admin])?;
        let mut p = Problems::default();
        validate_username(&mut p, &input.username);
        validate_password(&mut p, "password", &input.password);
        let name = p.check("name", bounded(&input.name, 1, 200));
        let roles = validate_roles(&mut p, &input.roles);
        p.finish()?;
        self.insert_user(
            &input.username,
            &name.unwrap_or_default(),
            &roles,
            &input.password,
            Some(actor.id),
        )
        .await
    }

    /// Creates an account from the command line, where the operating-system user is trusted.
    pub async fn create_user_cli(&self, input: NewUser) -> Result<UserView, ServiceError> {
        let system = Actor {
            id: Uuid::nil(),
            username: "system".into(),
            name: "system".into(),
            roles: vec![Role::Admin],
        };
        self.create_user(&system, input).await
    }

    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<UserView>, ServiceError> {
        actor.require_any(&[Role::Admin, Role::Supervisor])?;
        let rows = user::Entity::find()
            .order_by_asc(user::Column::Username)
            .all(&self.db().read)
            .await?;
        Ok(rows.into_iter().map(view).collect())
    }

    pub async fn get_user(&self, actor: &Actor, id: Uuid) -> Result<UserView, ServiceError> {
        if actor.id != id {
            actor.require_any(&[Role::Admin, Role::Supervisor])?;
        }
        user::Entity::find_by_id(id)
            .one(&self.db().read)
            .await?
            .map(view)
            .ok_or(ServiceError::NotFound("user"))
    }

    /// Changes an account (admins only). Deactivating or changing the password signs the user
    /// out everywhere.
    pub async fn update_user(
        &self,
        actor: &Actor,
        id: Uuid,
        input: UserUpdate,
    ) -> Result<UserView, ServiceError> {
        actor.require_any(&[Role::Admin])?;
        let mut p = Problems::default();
        let name = input
            .name
            .as_deref()
            .map(|n| p.check("name", bounded(n, 1, 200)));
        let roles = input.roles.as_deref().map(|r| validate_roles(&mut p, r));
        if let Some(pw) = &input.password {
            validate_password(&mut p, "password", pw);
        }
        if actor.id == id && input.active == Some(false) {
            p.add("active", "you cannot deactivate your own account");
        }
        p.finish()?;
        let hash = match input.password {
            Some(pw) => Some(hash_password(pw).await?),
            None => None,
        };
        let txn = self.db().write.begin().await?;
        let current = user::Entity::find_by_id(id)
            .one(&txn)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let mut am: user::ActiveModel = current.into();
        if let Some(Some(n)) = name {
            am.name = Set(n);
        }
        if let Some(r) = &roles {
            am.roles = Set(roles_string(r));
        }
        if let Some(a) = input.active {
            am.active = Set(a);
        }
        let revoke = hash.is_some() || input.active == Some(false);
        if let Some(h) = hash {
            am.password_hash = Set(h);
        }
        am.updated_at = Set(now());
        let updated = user::Entity::update(am).exec(&txn).await?;
        if revoke {
            auth_token::Entity::delete_many()
                .filter(auth_token::Column::UserId.eq(id))
                .exec(&txn)
                .await?;
        }
        crate::audit::record(
            &txn,
            Some(actor.id),
            "user.updated",
            "user",
            Some(id),
            Some(serde_json::json!({ "roles": updated.roles, "active": updated.active, "password_changed": revoke && updated.active })),
        )
        .await?;
        txn.commit().await?;
        self.inner.tokens.evict_user(id);
        Ok(view(updated))
    }

    /// Checks a username and password and issues a bearer token.
    pub async fn login(&self, username: &str, password: &str) -> Result<Session, ServiceError> {
        let found = user::Entity::find()
            .filter(user::Column::Username.eq(username.trim().to_lowercase()))
            .one(&self.db().read)
            .await?;
        // Verify against a fixed hash when the user does not exist, so response time does not
        // tell which usernames exist.
        let hash = match &found {
            Some(u) => u.password_hash.clone(),
            None => dummy_hash().await?,
        };
        let ok = verify_password(password.to_owned(), hash).await;
        let user = match found {
            Some(u) if ok && u.active => u,
            _ => return Err(ServiceError::BadCredentials),
        };
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?);
        let at = now();
        let expires_at = at + Duration::hours(i64::from(self.config().token_ttl_hours.max(1)));
        let txn = self.db().write.begin().await?;
        auth_token::Entity::insert(auth_token::ActiveModel {
            token_hash: Set(token_hash(&token)),
            user_id: Set(user.id),
            created_at: Set(at),
            expires_at: Set(expires_at),
        })
        .exec_without_returning(&txn)
        .await?;
        // Expired tokens of this user are swept at each sign-in.
        auth_token::Entity::delete_many()
            .filter(auth_token::Column::UserId.eq(user.id))
            .filter(auth_token::Column::ExpiresAt.lt(at))
            .exec(&txn)
            .await?;
        crate::audit::record(
            &txn,
            Some(user.id),
            "auth.login",
            "user",
            Some(user.id),
            None,
        )
        .await?;
        txn.commit().await?;
        Ok(Session {
            token,
            expires_at,
            user: view(user),
        })
    }

    /// The user a token belongs to, if the token is known, unexpired and the user active.
    pub async fn authenticate(&self, token: &str) -> Result<Actor, ServiceError> {
        if token.is_empty() || token.len() > 200 {
            return Err(ServiceError::Unauthenticated);
        }
        let hash = token_hash(token);
        let now = Utc::now();
        if let Some(actor) = self.inner.tokens.get(&hash, now) {
            return Ok(actor);
        }
        let read = &self.db().read;
        let Some(t) = auth_token::Entity::find_by_id(hash.clone())
            .one(read)
            .await?
        else {
            return Err(ServiceError::Unauthenticated);
        };
        match user::Entity::find_by_id(t.user_id).one(read).await? {
            Some(u) if t.expires_at > now && u.active => {
                let actor = Actor {
                    id: u.id,
                    roles: parse_roles(&u.roles),
                    username: u.username,
                    name: u.name,
                };
                let until = t.expires_at.min(now + TOKEN_CACHE_TTL);
                self.inner.tokens.put(hash, actor.clone(), until);
                Ok(actor)
            }
            _ => Err(ServiceError::Unauthenticated),
        }
    }

    /// Revokes a token.
    pub async fn logout(&self, token: &str) -> Result<(), ServiceError> {
        let hash = token_hash(token);
        self.inner.tokens.evict(&hash);
        auth_token::Entity::delete_by_id(hash)
            .exec(&self.db().write)
            .await?;
        Ok(())
    }
}
