// Chooses the upstream of a TCP/UDP port for `proxy_pass $berth_stream_upstream;`.
// There is no Lua in nginx's stream module on Debian, so this reads the endpoints the
// agent writes to $prefix/state/stream-backends.json, replaced atomically (written
// aside, then renamed over) so a read never sees half a file. njs 0.7 keeps no state
// between sessions, so the file is read for every connection (or UDP session) and the
// endpoint is chosen at random, which spreads connections evenly.
var fs = require('fs');

// ngx.conf_prefix is the directory nginx.conf was loaded from, `<prefix>/current/`.
// The kernel resolves `..` from where `current` points, the generation directory
// `<prefix>/generations/<id>/`, so two levels up is the prefix.
var STATE_FILE = '../../state/stream-backends.json';

function endpointsOf(s, name) {
  var path = ngx.conf_prefix + STATE_FILE;
  var state;
  try {
    state = JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (e) {
    s.error('berth: cannot read ' + path + ': ' + e.message);
    return [];
  }
  var backends = state && state.backends;
  if (!backends || !Object.prototype.hasOwnProperty.call(backends, name) || !Array.isArray(backends[name])) {
    return [];
  }
  return backends[name];
}

// An empty result makes proxy_pass fail, which closes the client's connection: the
// stream equivalent of a 503.
function upstream(s) {
  var name = s.variables.berth_stream_backend || '';
  var endpoints = endpointsOf(s, name);
  if (endpoints.length === 0) {
    s.warn('berth: stream backend "' + name + '" has no endpoints');
    return '';
  }
  var endpoint = endpoints[Math.floor(Math.random() * endpoints.length)];
  if (String(endpoint.address).indexOf(':') >= 0) {
    return '[' + endpoint.address + ']:' + endpoint.port;
  }
  return endpoint.address + ':' + endpoint.port;
}

export default { upstream: upstream };
