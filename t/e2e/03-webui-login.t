# e2e/03-webui-login.t -- the Conduix web UI's own way in, in a real browser, through one origin that
# serves the page and passes /api/ on (as the web UI's nginx does): the login page lists
# GET /api/v1/auth/providers as "Login with <name>" buttons; a click POSTs /api/v1/auth/login
# {"provider"} and follows data.auth_url (the state cookie comes with that answer); after the provider's
# pages the browser is back on /login?token=…, and the page's GET /auth/me with that token answers.
use v5.36;
use Test::More;
use CxTest qw(:DEFAULT jwt_decode);
use CxIdp;
use JSON::PP;

my $s = CxTest->new(workers => 2);
my $front = CxIdp->frontend(api => $s->base_url);
my $cb = $front->url . '/api/v1/auth/callback/keycloak';    # through the frontend's origin, as deployed
my $idp = CxIdp->idp(redirects => [$cb]);
$s->set_config(
    'auth.oidc' => [{ provider => 'keycloak', issuer_url => $idp->url, client_id => 'test-client',
        client_secret => 'test-secret', redirect_url => $cb }],
    'auth.frontend_url' => $front->url,
    'auth.admin_emails' => ['root@example.test']);
$s->write_config;
$s->start;

my $b = CxIdp::browser(start => $front->url . '/login', click => '#login-keycloak', login => 'root',
    landing => $front->url . '/login?token=');
ok($b->{ok}, 'clicked "Login with Keycloak", signed in, landed on /login?token=') or diag explain $b;
my $me = eval { decode_json($b->{me} // '') } // {};
ok($me->{success}, "the page's /auth/me call succeeded") or diag $b->{me}, $b->{error};
is($me->{data}{email}, 'root@example.test', 'as root@example.test');
is($me->{data}{role}, 'admin', 'admin (auth.admin_emails)');
ok(!length($b->{error} // ''), 'the page shows no error');

my $log = join("\n", map { "$_->{method} $_->{path} $_->{status}" } grep { ($_->{type} // '') eq 'access' } $s->log_lines);
like($log, qr{^GET /api/v1/auth/providers 200$}m, 'the page read the providers');
like($log, qr{^POST /api/v1/auth/login 200$}m, 'and posted /auth/login');
like($log, qr{^GET /api/v1/auth/callback/keycloak\?\S+ 302$}m, 'the callback redirected to the frontend');

my $tok = $b->{token} // '';
is($s->get('/api/v1/users', token => $tok)->{status}, 200, 'the admin token reads GET /users');
is($s->post('/api/v1/auth/logout', undef, token => $tok)->{status}, 200, 'logout');
wait_ok { my $x = $s->get('/api/v1/auth/me', token => $tok); $x->{status} == 401 } 1.5, 'refused after logout';

is($s->stop, 0, 'stop exits 0');
done_testing;
