-- Test-only name resolution for Prosody's outgoing s2s streams, loaded by
-- tests/e2e/test_prosody_s2s.py from a plugin path of its own: each domain
-- in the global option `test_s2s_hosts` ({ [domain] = { ip, port } })
-- connects to that fixed address instead of looking up DNS, as Chorus's
-- `s2s.hosts` does on the other side.
--
-- COMPAT(Prosody 0.12): its resolver without lua-unbound (net.dns) asks
-- the nameservers of /etc/resolv.conf and never reads /etc/hosts, so it
-- cannot find even `localhost` on a machine without DNS for it. Everything
-- after name resolution (TLS, dialback, routing) is Prosody's own code:
-- mod_s2s looks `service.new` up on every connection, and this wraps it.
local basic = require "net.resolvers.basic";
local service = require "net.resolvers.service";

local hosts = module:get_option("test_s2s_hosts", {});

-- Loaded once per virtual host: wrap the original only once.
service.unwrapped_new = service.unwrapped_new or service.new;
local unwrapped_new = service.unwrapped_new;

local nothing = setmetatable({}, { __index = { next = function (_, cb) cb(nil); end } });

function service.new(hostname, srv, conn_type, extra)
	local target = hosts[hostname];
	if not target then
		return unwrapped_new(hostname, srv, conn_type, extra);
	end
	if srv == "xmpp-server" then
		module:log("debug", "s2s to %s goes to %s port %d (test_s2s_hosts)", hostname, target[1], target[2]);
		return basic.new(target[1], target[2], conn_type, extra);
	end
	-- No direct TLS (XEP-0368) address: STARTTLS on the one above.
	return nothing;
end
