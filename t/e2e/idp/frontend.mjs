// frontend.mjs -- stands in for the Conduix web UI in the browser tests: one origin that serves a login
// page and passes /api/ through to conduix-cp, as the web UI's nginx (or Vite's dev proxy) does.
//
// The page at /login does what the web UI's Login page does, with the same requests: it lists
// GET /api/v1/auth/providers as buttons ("Login with <name>"); a button POSTs /api/v1/auth/login
// {"provider"} and sends the browser to data.auth_url; back at /login?token=…, it calls /api/v1/auth/me
// with "Authorization: Bearer <token>" and shows the answer in <pre id="me">.
//
// usage: FRONT_HOST=127.0.0.1 FRONT_PORT=8081 API=http://127.0.0.1:8080 node frontend.mjs
import { createServer, request } from 'node:http';

const host = process.env.FRONT_HOST || '127.0.0.1';
const port = Number(process.env.FRONT_PORT || 8081);
const api = new URL(process.env.API || 'http://127.0.0.1:8080');

const page = `<!doctype html>
<html><head><meta charset="utf-8"><title>Conduix (test frontend)</title></head>
<body>
<div id="providers"></div>
<pre id="me"></pre>
<pre id="error"></pre>
<script>
const q = new URLSearchParams(location.search);
const show = (id, v) => { document.getElementById(id).textContent = typeof v === 'string' ? v : JSON.stringify(v); };
async function login(provider) {
  const r = await fetch('/api/v1/auth/login', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ provider }) });
  const j = await r.json();
  if (j.success && j.data && j.data.auth_url) window.location.href = j.data.auth_url;
  else show('error', j);
}
async function main() {
  const token = q.get('token');
  if (token) {
    const r = await fetch('/api/v1/auth/me', { headers: { Authorization: 'Bearer ' + token } });
    const j = await r.json();
    if (j.success) localStorage.setItem('auth-storage', JSON.stringify({ state: { token, user: j.data, isAuthenticated: true } }));
    show(j.success ? 'me' : 'error', j);
    return;
  }
  const r = await fetch('/api/v1/auth/providers');
  const j = await r.json();
  for (const p of (j.data || [])) {
    const b = document.createElement('button');
    b.id = 'login-' + p.id;
    b.textContent = 'Login with ' + p.name;
    b.onclick = () => login(p.id);
    document.getElementById('providers').append(b);
  }
  if (!(j.data || []).length) show('error', 'no providers');
}
main().catch((e) => show('error', String(e)));
</script>
</body></html>
`;

createServer((req, res) => {
  if (req.url.startsWith('/api/')) {
    const up = request({ host: api.hostname, port: api.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('error', (e) => { res.writeHead(502, { 'content-type': 'text/plain' }); res.end(`proxy: ${e.message}`); });
    req.pipe(up);
    return;
  }
  if (req.url === '/login' || req.url.startsWith('/login?')) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(page) });
    res.end(page);
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found');
}).listen(port, host, () => console.log(`listening http://${host}:${port}`));
