# e2e/02-browser-oauth2.t -- the same provider as a plain OAuth2 provider (authorization code, PKCE,
# userinfo endpoint; no ID token checks), signed in with a real browser: the user comes from the userinfo
# fields the config names, and is a different user from the same person signed in through OIDC (users are
# never merged by e-mail).
use v5.36;
use Test::More;
use CxTest qw(:DEFAULT jwt_decode);
use CxIdp;
use JSON::PP;

my $s = CxTest->new(workers => 2);
my $base = $s->base_url;
my $cb_oidc = "$base/api/v1/auth/callback/test";
my $cb_plain = "$base/api/v1/auth/callback/plain";
my $idp = CxIdp->idp(redirects => [$cb_oidc, $cb_plain]);
my $iss = $idp->url;
my $front = CxIdp->frontend(api => $base);
$s->set_config(
    'auth.oauth2' => [{ provider => 'plain', name => 'Plain OAuth2', client_id => 'test-client', client_secret => 'test-secret',
        redirect_url => $cb_plain, auth_url => "$iss/auth", token_url => "$iss/token", userinfo_url => "$iss/me",
        scopes => ['openid', 'email', 'profile'], id_field => 'sub', email_field => 'email', name_field => 'name' }],
    'auth.oidc' => [{ provider => 'test', issuer_url => $iss, client_id => 'test-client', client_secret => 'test-secret',
        redirect_url => $cb_oidc }],
    'auth.frontend_url' => $front->url);
$s->write_config;
$s->start;

my $r = $s->get('/api/v1/auth/providers');
is_deeply([map { "$_->{id}:$_->{type}" } @{ $r->{json}{data} }], ['plain:oauth2', 'test:oidc'],
    'providers: the OAuth2 one first, then the OIDC one');

my $b = CxIdp::browser(start => "$base/api/v1/auth/login/plain", login => 'alice', landing => $front->url . '/login?token=');
ok($b->{ok}, 'signed in through the plain OAuth2 provider') or diag explain $b;
my $me = eval { decode_json($b->{me} // '') } // {};
is($me->{data}{email}, 'alice@example.test', 'the e-mail comes from the userinfo endpoint');
is($me->{data}{name}, 'Test alice', 'and the name');
is($me->{data}{provider}, 'plain', 'provider plain');
my $tok = $b->{token} // '';
my $row = $s->sql('SELECT * FROM users WHERE id = ?', jwt_decode($tok)->{claims}{sub})->[0] // {};
is($row->{provider_subject}, 'alice', 'the subject is the userinfo field named by id_field');

my $b2 = CxIdp::browser(start => "$base/api/v1/auth/login/test", login => 'alice', landing => $front->url . '/login?token=');
ok($b2->{ok}, 'the same person signs in through OIDC') or diag explain $b2;
my $me2 = eval { decode_json($b2->{me} // '') } // {};
is($me2->{data}{email}, 'alice@example.test', 'with the same e-mail');
isnt($me2->{data}{id}, $me->{data}{id}, 'but is another user: (provider, subject) is the key, never the e-mail');
is($s->sql('SELECT COUNT(*) AS n FROM users WHERE email = ?', 'alice@example.test')->[0]{n}, 2, 'two users rows');

is($s->post('/api/v1/auth/logout', undef, token => $tok)->{status}, 200, 'logout');
wait_ok { my $x = $s->get('/api/v1/auth/me', token => $tok); $x->{status} == 401 } 1.5, 'the OAuth2 token is refused';
is($s->get('/api/v1/auth/me', token => $b2->{token})->{status}, 200, 'the OIDC token of the same person still works');

is($s->stop, 0, 'stop exits 0');
done_testing;
