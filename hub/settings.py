"""The one typed configuration object, read once from the environment and passed in."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, TypeVar

Env = Literal["dev", "production"]
JwtAlgorithm = Literal["HS256", "RS256", "ES256"]

_T = TypeVar("_T", bound=str)
_DURATION = re.compile(r"^(\d+)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


MEDIA_MAX_BYTES: Mapping[str, int] = {
    "avatar": 5 * 1024 * 1024,
    "id_document": 10 * 1024 * 1024,
    "gig_attachment": 20 * 1024 * 1024,
    "chat_attachment": 20 * 1024 * 1024,
}
"""Default upload limit of each media kind (MEDIA_MAX_BYTES_<KIND>)."""


class SettingsError(Exception):
    """A bad or missing environment value; str() is one line naming the variable and what it expects."""

    def __init__(self, variable: str, expected: str) -> None:
        super().__init__(f"{variable}: {expected}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    """Everything gigwire reads from its environment. Build with `Settings.from_env()`."""

    env: Env = "dev"
    database_url: str | None = None
    # the PostgreSQL pool of each process (hub/db.py)
    database_pool_min: int = 2
    database_pool_max: int = 20
    database_acquire_timeout: float = 5.0
    redis_url: str | None = None
    redis_prefix: str = "gigwire:"
    data_dir: Path = Path(".data")
    host: str = "0.0.0.0"
    port: int = 8080
    log_level: str = "INFO"
    # seconds from SIGTERM until the web process has exited, whatever state it is in
    shutdown_timeout: float = 15.0
    # allocations between young collections of Python's cycle collector; 0 keeps CPython's (hub/gc_tune.py)
    gc_threshold: int = 50_000
    # auth
    otp_sender: str = "log"
    otp_webhook_url: str | None = None
    jwt_secret: str = ""
    jwt_algorithm: JwtAlgorithm = "HS256"
    jwt_private_key: str = ""
    jwt_public_key: str = ""
    access_token_ttl: int = 2 * 3600
    refresh_token_ttl: int = 30 * 86400
    client_url: str = "http://localhost:8080"
    cookie_secure: bool = False
    otp_sends_per_ip: int = 20
    refresh_reuse_grace: int = 10
    # email verification codes (rest/email_sender.py): log (dev) or webhook (an email bridge)
    email_sender: str = "log"
    email_webhook_url: str | None = None
    # Google sign-in (rest/google_auth.py): accepted audiences, and where Google's keys are
    google_client_ids: tuple[str, ...] = ()
    google_jwks_url: str = "https://www.googleapis.com/oauth2/v3/certs"
    # REST rate limits: requests per minute
    api_rate_per_ip: int = 300
    api_rate_per_user: int = 600
    api_rate_per_key: int = 600  # server API (/api/server/*) requests a minute per API key
    # proxies (IP networks) whose X-Forwarded-For names the client; empty: trust none
    trusted_proxies: tuple[str, ...] = ()
    # money
    platform_fee_bps: int = 1000
    currency: str = "INR"
    payment_gateway: Literal["sandbox", "razorpay"] = "sandbox"
    razorpay_key_id: str = "rzp_test_sandbox"
    # The sandbox's own secrets, as from_env gives dev mode; production must set real ones.
    razorpay_key_secret: str = "sandbox-key-secret"
    razorpay_webhook_secret: str = "sandbox-webhook-secret"
    razorpay_base_url: str = "https://api.razorpay.com"
    razorpayx_account_number: str = ""
    # push
    fcm_credentials_file: str | None = None
    fcm_endpoint: str = "https://fcm.googleapis.com"
    push_max_attempts: int = 8
    # realtime
    ws_queue_max_frames: int = 1000
    ws_queue_max_bytes: int = 4 * 1024 * 1024
    ws_max_frame_bytes: int = 64 * 1024
    ws_auth_timeout: float = 10.0
    ws_heartbeat_s: float = 15.0
    chat_rate_per_s: float = 10.0
    chat_burst: int = 20
    event_rate_per_s: float = 30.0
    event_burst: int = 60
    presence_ttl: int = 45
    # workers
    run_workers: bool = True
    auto_approve_days: float = 7.0
    unpaid_expire_hours: float = 24.0
    timer_sweep_s: float = 30.0
    payout_retry_s: float = 300.0
    refund_retry_s: float = 1800.0
    refund_max_attempts: int = 5
    idempotency_retention_s: float = 86400.0
    feed_retention_s: float = 7 * 86400.0  # FEED_RETENTION: how long a user's feed entries are kept
    worker_metrics_port: int = 0
    # reviews (domain/reviews.py): days after completion to review, hours to edit a review
    review_window_days: int = 14
    review_edit_hours: int = 24
    # media (hub/storage.py, domain/media.py): where the bytes go, link lifetime, limits per kind
    media_storage_url: str = ""  # MEDIA_STORAGE_URL; empty: file://<data_dir>/media
    media_url_ttl_s: int = 3600
    media_max_bytes: Mapping[str, int] = field(default_factory=lambda: dict(MEDIA_MAX_BYTES))
    media_max_pixels: int = 40_000_000
    public_url: str = ""  # PUBLIC_URL: base of links gigwire serves itself; empty: the request's origin
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def embedded_db(self) -> bool:
        """True when no DATABASE_URL is set and the web process runs its own PostgreSQL."""
        return self.database_url is None

    @property
    def broker_url(self) -> str:
        """The broker URL: REDIS_URL when set, else the in-process broker."""
        return self.redis_url or "memory://"

    @property
    def is_dev(self) -> bool:
        return self.env == "dev"

    def with_(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests and the embedded default use this)."""
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise SettingsError naming the first bad one."""
        e = dict(os.environ if environ is None else environ)
        r = _Reader(e)
        database_url = r.opt("DATABASE_URL")
        pool_max = r.integer("DATABASE_POOL_MAX", 20, 1, 10_000)
        pool_min = r.integer("DATABASE_POOL_MIN", min(2, pool_max), 0, pool_max)
        redis_url = r.opt("REDIS_URL")
        if redis_url is not None and not redis_url.startswith(("redis://", "rediss://", "memory://")):
            raise SettingsError("REDIS_URL", "a redis://, rediss:// or memory:// URL")
        if redis_url == "memory://":
            redis_url = None
        env_default: Env = "dev" if database_url is None else "production"
        env = r.choice("GIGWIRE_ENV", ("dev", "production"), env_default)
        data_dir = Path(r.text("GIGWIRE_DATA_DIR", ".data"))
        algorithm: JwtAlgorithm = r.choice("JWT_ALGORITHM", ("HS256", "RS256", "ES256"), "HS256")
        secret = r.opt("JWT_SECRET") or ""
        private_key = public_key = ""
        if algorithm == "HS256":
            if secret and len(secret) < 32:
                raise SettingsError("JWT_SECRET", "at least 32 characters")
            if not secret:
                if env != "dev":
                    raise SettingsError("JWT_SECRET", "required outside dev mode, at least 32 characters")
                secret = _dev_secret(data_dir)
        else:
            private_key = r.file("JWT_PRIVATE_KEY_FILE")
            public_key = r.file("JWT_PUBLIC_KEY_FILE")
        otp_sender = r.choice("OTP_SENDER", ("log", "webhook"), "log")
        otp_webhook_url = r.opt("OTP_WEBHOOK_URL")
        if otp_sender == "log" and env == "production" and not r.flag("OTP_SENDER_LOG_IN_PRODUCTION", False):
            raise SettingsError("OTP_SENDER", "'webhook' in production ('log' would write codes to the log)")
        if otp_sender == "webhook" and not otp_webhook_url:
            raise SettingsError("OTP_WEBHOOK_URL", "an http(s) URL when OTP_SENDER=webhook")
        email_sender = r.choice("EMAIL_SENDER", ("log", "webhook"), "log")
        email_webhook_url = r.opt("EMAIL_WEBHOOK_URL")
        if email_sender == "webhook" and not email_webhook_url:
            raise SettingsError("EMAIL_WEBHOOK_URL", "an http(s) URL when EMAIL_SENDER=webhook")
        google_ids = (r.opt("GOOGLE_CLIENT_IDS") or "").replace(" ", "")
        gateway: Literal["sandbox", "razorpay"] = r.choice(
            "PAYMENT_GATEWAY", ("sandbox", "razorpay"), "sandbox"
        )
        if gateway == "sandbox" and env == "production":
            raise SettingsError("PAYMENT_GATEWAY", "'razorpay' in production (the sandbox is dev-only)")
        key_secret = r.opt("RAZORPAY_KEY_SECRET") or ""
        webhook_secret = r.opt("RAZORPAY_WEBHOOK_SECRET") or ""
        if gateway == "razorpay":
            if not key_secret:
                raise SettingsError(
                    "RAZORPAY_KEY_SECRET", "the gateway key secret when PAYMENT_GATEWAY=razorpay"
                )
            if not webhook_secret:
                raise SettingsError(
                    "RAZORPAY_WEBHOOK_SECRET", "the webhook secret when PAYMENT_GATEWAY=razorpay"
                )
        else:
            key_secret = key_secret or "sandbox-key-secret"
            webhook_secret = webhook_secret or "sandbox-webhook-secret"
        fee = r.integer("PLATFORM_FEE_BPS", 1000, 0, 5000)
        return cls(
            env=env,
            database_url=database_url,
            database_pool_min=pool_min,
            database_pool_max=pool_max,
            database_acquire_timeout=r.seconds("DATABASE_ACQUIRE_TIMEOUT", 5.0, 0.1, 300.0),
            redis_url=redis_url,
            redis_prefix=r.text("REDIS_PREFIX", "gigwire:"),
            data_dir=data_dir,
            host=r.text("HOST", "0.0.0.0"),
            port=r.integer("PORT", 8080, 0, 65535),
            log_level=r.choice("LOG_LEVEL", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO", upper=True),
            shutdown_timeout=float(r.integer("SHUTDOWN_TIMEOUT", 15, 1, 3600)),
            gc_threshold=r.integer("GC_THRESHOLD", 50_000, 0, 10**7),
            otp_sender=otp_sender,
            otp_webhook_url=otp_webhook_url,
            jwt_secret=secret,
            jwt_algorithm=algorithm,
            jwt_private_key=private_key,
            jwt_public_key=public_key,
            access_token_ttl=r.duration("ACCESS_TOKEN_TTL", 2 * 3600),
            refresh_token_ttl=r.duration("REFRESH_TOKEN_TTL", 30 * 86400),
            client_url=r.text("CLIENT_URL", "http://localhost:8080"),
            cookie_secure=r.flag("COOKIE_SECURE", env == "production"),
            api_rate_per_ip=r.integer("API_RATE_PER_IP", 300, 1, 10**7),
            api_rate_per_user=r.integer("API_RATE_PER_USER", 600, 1, 10**7),
            api_rate_per_key=r.integer("API_RATE_PER_KEY", 600, 1, 10**7),
            otp_sends_per_ip=r.integer("OTP_SENDS_PER_IP", 20, 1, 10**7),
            refresh_reuse_grace=r.integer("REFRESH_REUSE_GRACE", 10, 0, 300),
            email_sender=email_sender,
            email_webhook_url=email_webhook_url,
            google_client_ids=tuple(c for c in google_ids.split(",") if c),
            google_jwks_url=r.text("GOOGLE_JWKS_URL", "https://www.googleapis.com/oauth2/v3/certs"),
            trusted_proxies=r.networks("TRUSTED_PROXIES"),
            platform_fee_bps=fee,
            currency=r.text("CURRENCY", "INR"),
            payment_gateway=gateway,
            razorpay_key_id=r.text("RAZORPAY_KEY_ID", "rzp_test_sandbox"),
            razorpay_key_secret=key_secret,
            razorpay_webhook_secret=webhook_secret,
            razorpay_base_url=r.text("RAZORPAY_BASE_URL", "https://api.razorpay.com").rstrip("/"),
            razorpayx_account_number=r.text("RAZORPAYX_ACCOUNT_NUMBER", ""),
            fcm_credentials_file=r.opt("FCM_CREDENTIALS_FILE"),
            fcm_endpoint=r.text("FCM_ENDPOINT", "https://fcm.googleapis.com").rstrip("/"),
            push_max_attempts=r.integer("PUSH_MAX_ATTEMPTS", 8, 1, 50),
            ws_queue_max_frames=r.integer("WS_QUEUE_MAX_FRAMES", 1000, 1, 10**7),
            ws_queue_max_bytes=r.integer("WS_QUEUE_MAX_BYTES", 4 * 1024 * 1024, 1024, 2**31),
            ws_max_frame_bytes=r.integer("WS_MAX_FRAME_BYTES", 64 * 1024, 1024, 2**24),
            ws_auth_timeout=float(r.integer("WS_AUTH_TIMEOUT", 10, 1, 3600)),
            ws_heartbeat_s=float(r.integer("WS_HEARTBEAT", 15, 1, 3600)),
            chat_rate_per_s=float(r.integer("CHAT_RATE_PER_S", 10, 1, 10**6)),
            chat_burst=r.integer("CHAT_BURST", 20, 1, 10**6),
            event_rate_per_s=float(r.integer("EVENT_RATE_PER_S", 30, 1, 10**6)),
            event_burst=r.integer("EVENT_BURST", 60, 1, 10**6),
            presence_ttl=r.integer("PRESENCE_TTL", 45, 5, 3600),
            run_workers=r.flag("RUN_WORKERS", redis_url is None),
            auto_approve_days=float(r.integer("AUTO_APPROVE_DAYS", 7, 1, 365)),
            unpaid_expire_hours=float(r.integer("UNPAID_EXPIRE_HOURS", 24, 1, 24 * 365)),
            timer_sweep_s=float(r.integer("TIMER_SWEEP_S", 30, 1, 3600)),
            payout_retry_s=float(r.integer("PAYOUT_RETRY_AFTER_S", 300, 1, 86400)),
            refund_retry_s=float(r.integer("REFUND_RETRY_AFTER_S", 1800, 1, 7 * 86400)),
            refund_max_attempts=r.integer("REFUND_MAX_ATTEMPTS", 5, 1, 100),
            idempotency_retention_s=float(r.integer("IDEMPOTENCY_KEY_RETENTION_S", 86400, 3600, 365 * 86400)),
            feed_retention_s=float(r.duration("FEED_RETENTION", 7 * 86400)),
            worker_metrics_port=r.integer("WORKER_METRICS_PORT", 0, 0, 65535),
            review_window_days=r.integer("REVIEW_WINDOW_DAYS", 14, 1, 365),
            review_edit_hours=r.integer("REVIEW_EDIT_HOURS", 24, 0, 24 * 30),
            media_storage_url=_media_storage_url(r.text("MEDIA_STORAGE_URL", "")),
            media_url_ttl_s=r.duration("MEDIA_URL_TTL", 3600),
            media_max_bytes={
                kind: r.integer(f"MEDIA_MAX_BYTES_{kind.upper()}", default, 1024, 1024**3)
                for kind, default in MEDIA_MAX_BYTES.items()
            },
            media_max_pixels=r.integer("MEDIA_MAX_PIXELS", 40_000_000, 10_000, 150_000_000),
            public_url=_public_url(r.text("PUBLIC_URL", "")),
        )


class _Reader:
    """Typed access to environment variables, each failure a SettingsError."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def opt(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def text(self, name: str, default: str) -> str:
        return self.opt(name) or default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.opt(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(name, f"an integer from {low} to {high}, got {raw!r}") from None
        if not low <= value <= high:
            raise SettingsError(name, f"an integer from {low} to {high}, got {value}")
        return value

    def seconds(self, name: str, default: float, low: float, high: float) -> float:
        """A number of seconds, decimals allowed, within [low, high]."""
        raw = self.opt(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:  # NaN fails too
            raise SettingsError(name, f"a number of seconds from {low:g} to {high:g}, got {raw!r}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.opt(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise SettingsError(name, f"true or false, got {raw!r}")

    def choice(self, name: str, options: tuple[_T, ...], default: _T, upper: bool = False) -> _T:
        raw = self.opt(name)
        if raw is None:
            return default
        if upper:
            raw = raw.upper()
        for option in options:
            if raw == option:
                return option
        raise SettingsError(name, f"one of {', '.join(options)}, got {raw!r}")

    def duration(self, name: str, default: int) -> int:
        raw = self.opt(name)
        if raw is None:
            return default
        match = _DURATION.match(raw)
        if not match or int(match.group(1)) <= 0:
            raise SettingsError(name, f"a positive duration in seconds or with s/m/h/d, got {raw!r}")
        return int(match.group(1)) * _UNITS[match.group(2)]

    def networks(self, name: str) -> tuple[str, ...]:
        """A comma-separated list of IP addresses or networks (CIDR), normalised; empty when unset."""
        raw = self.opt(name)
        if raw is None:
            return ()
        found: list[str] = []
        for part in (p.strip() for p in raw.split(",")):
            try:
                found.append(str(ipaddress.ip_network(part, strict=False)))
            except ValueError:
                expected = f"IP addresses or networks separated by commas, got {part!r}"
                raise SettingsError(name, expected) from None
        return tuple(found)

    def file(self, name: str) -> str:
        path = self.opt(name)
        if path is None:
            raise SettingsError(name, "the path of a PEM key file (required for RS256/ES256)")
        try:
            return Path(path).read_text()
        except OSError as exc:
            raise SettingsError(name, f"a readable PEM key file ({exc.strerror})") from None


def _media_storage_url(raw: str) -> str:
    if raw and not re.match(r"^(file:///.|s3://[^/?#]+)", raw):
        raise SettingsError(
            "MEDIA_STORAGE_URL", f"file:///absolute/path or s3://bucket?endpoint=..., got {raw!r}"
        )
    return raw


def _public_url(raw: str) -> str:
    if raw and not re.fullmatch(r"https?://[^/?#\s]+(/[^?#\s]*)?", raw):
        raise SettingsError("PUBLIC_URL", f"an http(s) URL such as https://api.example.com, got {raw!r}")
    return raw.rstrip("/")


def _dev_secret(data_dir: Path) -> str:
    """The dev-mode JWT secret, generated once and kept under the data directory."""
    path = data_dir / "jwt_secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.write_text(secret)
    path.chmod(0o600)
    return secret
