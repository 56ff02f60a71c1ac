# e2e/01-browser-oidc.t -- a person signs in with a real browser (Debian's chromium, headless) and a real
# OpenID provider (oidc-provider on 127.0.0.2): GET /api/v1/auth/login/test, the provider's own login and
# consent pages, back through the callback to <frontend_url>/login?token=…, where the page's call to
# /auth/me with that token answers; then logout, and the token is refused.
use v5.36;
use Test::More;
use CxTest qw(:DEFAULT jwt_decode);
use CxIdp;
use JSON::PP;

my $s = CxTest->new(workers => 2);
my $base = $s->base_url;
my $cb = "$base/api/v1/auth/callback/test";
my $idp = CxIdp->idp(redirects => [$cb]);
my $front = CxIdp->frontend(api => $base);
$s->set_config(
    'auth.oidc' => [{ provider => 'test', issuer_url => $idp->url, client_id => 'test-client', client_secret => 'test-secret',
        redirect_url => $cb }],
    'auth.frontend_url' => $front->url,
    'auth.operator_emails' => ['alice@example.test']);
$s->write_config;
$s->start;

my $b = CxIdp::browser(start => "$base/api/v1/auth/login/test", login => 'alice', landing => $front->url . '/login?token=');
ok($b->{ok}, 'the browser signed in on the provider and landed on the frontend') or diag explain $b;
like($b->{url} // '', qr{^\Q${\ $front->url}\E/login\?token=[\w-]+\.[\w-]+\.[\w-]+$}, 'at <frontend_url>/login?token=<jwt>');
is($b->{referrer} // '', '', 'the landing page got no Referer (Referrer-Policy: no-referrer)');
my $me = eval { decode_json($b->{me} // '') } // {};
is($me->{data}{email}, 'alice@example.test', "the page's GET /auth/me with the token answers alice");
is($me->{data}{role}, 'operator', 'role operator (auth.operator_emails)');
my ($sess) = grep { $_->{name} eq 'cx_session' } @{ $b->{cookies} // [] };
ok($sess && $sess->{httpOnly}, 'the browser holds the HttpOnly session cookie');
ok(!grep({ $_->{name} eq 'cx_sso_state' } @{ $b->{cookies} // [] }), 'and no state cookie any more');

my $tok = $b->{token} // '';
is(jwt_decode($tok)->{claims}{email}, 'alice@example.test', 'the token is for alice');
my $r = $s->get('/api/v1/auth/me', token => $tok);
is($r->{status}, 200, 'GET /auth/me with the token: 200');
is($r->{json}{data}{provider}, 'test', 'provider test');
is($s->sql("SELECT COUNT(*) AS n FROM users WHERE provider = 'test' AND provider_subject = 'alice'")->[0]{n}, 1,
    'alice provisioned once');

$r = $s->post('/api/v1/auth/logout', undef, token => $tok);
is($r->{status}, 200, 'logout: 200');
wait_ok {
    for (1 .. 6) { return 0 unless $s->request('GET', '/api/v1/auth/me', token => $tok, ua => HTTP::Tiny->new)->{status} == 401 }
    1;
} 1.5, 'the token is refused from then on, on every worker';
# The workers refresh their revocation lists on their own timers: the one behind the keep-alive connection
# may refuse the token a moment later than the ones that answered above, but within the second.
wait_ok { $s->get('/api/v1/pipelines', token => $tok)->{status} == 401 } 1.5, 'on the other routes too';

is($s->stop, 0, 'stop exits 0');
done_testing;
