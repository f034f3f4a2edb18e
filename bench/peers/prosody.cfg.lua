-- Prosody 0.12 under chorus-bench compare. {DIR} and {PORT} are filled in by
-- the tool; loopback only. No rate limits, as for Chorus.
run_as_root = true
pidfile = "{DIR}/prosody.pid"
data_path = "{DIR}/data"
log = { warn = "{DIR}/prosody.log" }

interfaces = { "127.0.0.1" }
c2s_ports = { {PORT} }
c2s_direct_tls_ports = {}
s2s_ports = {}
http_ports = {}
https_ports = {}
admin_socket = "{DIR}/prosody.sock"

network_backend = "epoll"
-- As Chorus (1024); the default overflows under a burst of connects.
tcp_backlog = 1024
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
-- The peers' common default; PLAIN logins run PBKDF2 at this count.
default_iteration_count = 4096

allow_registration = true
min_seconds_between_registrations = 0
registration_throttle_max = 1000000
registration_throttle_period = 1

modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "ping"; "register";
	"version"; "time"; "private"; "blocklist"; "carbons"; "vcard_legacy";
	"smacks"; "posix";
	-- PEP, on by default in Prosody as in Chorus.
	"pep";
	-- "mam" when the tool runs with archiving on (as Chorus by default).
	{MAM}
}
-- With mod_mam: archive every message unless the user opts out, as
-- Chorus's default_pref "always"; internal storage, Prosody's default.
default_archive_policy = true
archive_expires_after = "never"
modules_disabled = { "s2s" }

VirtualHost "localhost"
	ssl = { key = "{DIR}/key.pem"; certificate = "{DIR}/cert.pem" }

-- Group chat; rooms archive (muc_mam, logging by default) when the tool
-- runs with archiving on, as Chorus's. No occupant limit by default.
Component "conference.localhost" "muc"
	modules_enabled = { {MUC_MAM} }
	muc_log_by_default = true
