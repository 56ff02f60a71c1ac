# 46-sso-failures.t -- every failed sign-in is answered in the envelope, logged and audited (login_failed,
# with the stage, the status and why): a start for an unknown provider (404) or with a bad body (400), a
# provider that cannot be reached when the sign-in starts (502), a callback for an unknown provider (404)
# or with bad parameters; with MySQL down a start is 503 and only logged. Every answer of the callback
# deletes the state cookie. Cookies are Secure when the provider's redirect_url is https, and logout
# deletes the session cookie with the same attributes it was set with.
use v5.36;
use Test::More;
use CxTest qw(:DEFAULT jwt_decode);
use CxIdp;
use JSON::PP;

my $fake = CxIdp->fake;
my $s = CxTest->new(workers => 1);
my $base = $s->base_url;
my $dead = CxIdp::free_port_on('127.0.0.2');
$s->set_config(
    'auth.oidc' => [
        $fake->provider('fake', $base),
        $fake->provider('dead', $base, issuer_url => "http://127.0.0.2:$dead"),
        # its users come back over https (a proxy in front): what the cookies carry; the test calls the callback itself
        $fake->provider('tls', $base, redirect_url => 'https://cp.example.test/api/v1/auth/callback/tls'),
    ]);
$s->write_config;
$s->start;
$fake->control(mode => 'valid');

# failures -- the login_failed rows written since the last call, oldest first, with after_json decoded.
my $last_id = 0;
sub failures() {
    my $rows = $s->sql("SELECT id, actor, target_type, target_id, request_id, after_json FROM audit_log "
        . "WHERE action = 'login_failed' AND id > ? ORDER BY id", $last_id);
    $last_id = $rows->[-1]{id} if @$rows;
    for (@$rows) {
        my $j = $_->{after_json} // '';
        utf8::encode($j) if utf8::is_utf8($j);    # the driver may hand back characters
        $_->{after} = eval { decode_json($j) } // {};
    }
    return @$rows;
}
sub cookies($r) { my $c = $r->{headers}{'set-cookie'} // []; ref $c ? @$c : ($c) }
sub state_deleted($r) { grep { /^cx_sso_state=;/ && /Max-Age=0/ } cookies($r) }
sub json_of($r) { eval { decode_json($r->{content}) } // {} }

# audited -- one login_failed row for this request: stage, status, provider (target_id) and reason.
sub audited($r, $stage, $status, $provider, $name) {
    my @f = failures();
    my $rid = $r->{headers}{'x-request-id'} // $r->{request_id};
    subtest "$name: audited" => sub {
        is(scalar @f, 1, 'one login_failed row') or diag explain \@f;
        my $a = $f[0] // {};
        is($a->{request_id}, $rid, '  of this request');
        is($a->{actor}, 'anonymous', '  actor anonymous');
        is($a->{target_type}, 'provider', '  target type provider');
        is($a->{target_id}, $provider, '  the provider as named');
        is($a->{after}{stage}, $stage, "  stage $stage");
        is($a->{after}{status}, $status, "  status $status");
        ok(length($a->{after}{reason} // ''), "  with the reason: " . ($a->{after}{reason} // ''));
    };
}

sub logged($rid, $re) { grep { ($_->{msg} // '') =~ $re && ($_->{msg} // '') =~ /\Q$rid\E/ } $s->log_lines }

# ---- the start ---------------------------------------------------------------------------------------
my $jar = CxIdp::Jar->new;
my $r = CxIdp::http($jar, 'GET', "$base/api/v1/auth/login/nope");
is($r->{status}, 404, 'GET /auth/login/<unknown>: 404');
is(json_of($r)->{code}, 'NOT_FOUND', '  NOT_FOUND');
audited($r, 'begin', 404, 'nope', 'an unknown provider');
ok(logged($r->{headers}{'x-request-id'}, qr/sign-in not started \(404\)/), '  and logged');

$r = $s->post('/api/v1/auth/login', { provider => 'nope' });
is($r->{status}, 400, 'POST /auth/login {"provider":"nope"}: 400');
ok(exists $r->{json}{details}{provider}, '  naming provider');
audited($r, 'begin', 400, 'nope', 'POST of an unknown provider');

$r = $s->post('/api/v1/auth/login', { colour => 'red' });
is($r->{status}, 400, 'POST /auth/login with an unknown field: 400');
is_deeply([ keys %{ $r->{json}{details} // {} } ], ['colour'], '  naming it');
audited($r, 'begin', 400, undef, 'POST with an unknown field');

$r = $s->post('/api/v1/auth/login', [1]);
is($r->{status}, 400, 'POST /auth/login [1]: 400');
ok(exists $r->{json}{details}{body}, '  naming body');
audited($r, 'begin', 400, undef, 'POST of an array');

$r = $s->post('/api/v1/auth/login', { provider => "fake\x{0}x" });
is($r->{status}, 400, 'POST /auth/login with a NUL in the provider: 400 (not the provider "fake")');
failures();

$r = CxIdp::http($jar, 'GET', "$base/api/v1/auth/login/%FF%FE" . ('x' x 100));
is($r->{status}, 404, 'GET /auth/login/<not UTF-8, long>: 404');
audited($r, 'begin', 404, undef, 'a provider id that is no text (not stored)');

$r = CxIdp::http($jar, 'GET', "$base/api/v1/auth/login/dead");
is($r->{status}, 502, 'GET /auth/login/dead (discovery unreachable): 502');
is(json_of($r)->{code}, 'PROVIDER_ERROR', '  PROVIDER_ERROR');
like(json_of($r)->{error} // '', qr/identity provider dead: discovery/, '  naming the provider and the step');
audited($r, 'begin', 502, 'dead', 'an unreachable provider');
ok(!grep({ /^cx_sso_state=/ } cookies($r)), '  and no state cookie is set');

$r = $s->post('/api/v1/auth/login', { provider => 'dead' });
is($r->{status}, 502, 'POST /auth/login {"provider":"dead"}: 502');
audited($r, 'begin', 502, 'dead', 'POST of an unreachable provider');

# ---- the callback ----------------------------------------------------------------------------------------
$r = CxIdp::http($jar, 'GET', "$base/api/v1/auth/login/fake");
is($r->{status}, 302, 'a sign-in with fake starts');
my $state = $jar->get('127.0.0.1', 'cx_sso_state');
ok($state, '  with its state cookie');
unlike(join(' ', cookies($r)), qr/Secure/, '  not Secure (an http redirect_url)');

$r = CxIdp::http($jar, 'GET', "$base/api/v1/auth/callback/nope?state=$state&code=c");
is($r->{status}, 404, 'the callback of an unknown provider: 404');
ok(state_deleted($r), '  deletes the state cookie');
is($r->{headers}{'cache-control'}, 'no-store', '  Cache-Control: no-store');
audited($r, 'callback', 404, 'nope', 'the callback of an unknown provider');
is($s->sql('SELECT COUNT(*) AS n FROM auth_states')->[0]{n}, 1, '  the stored sign-in is left for its own callback');

$jar->set('127.0.0.1', 'cx_sso_state', $state);
$r = CxIdp::http($jar, 'GET', "$base/api/v1/auth/callback/fake?code=c");
is($r->{status}, 400, 'a callback without state: 400');
ok(state_deleted($r), '  deletes the state cookie');
audited($r, 'callback', 400, 'fake', 'a callback without state');

$r = CxIdp::http(CxIdp::Jar->new, 'GET', "$base/api/v1/auth/callback?state=$state&code=c");
is($r->{status}, 400, 'the provider-less callback without the cookie: 400');
ok(state_deleted($r), '  deletes the state cookie too');
audited($r, 'callback', 400, undef, 'the provider-less callback without the cookie');

# ---- MySQL down: answered and logged; the audit row cannot be written --------------------------------------
$s->stop_mysql;
$r = CxIdp::http($jar, 'GET', "$base/api/v1/auth/login/fake");
is($r->{status}, 503, 'a start with MySQL down: 503');
is(json_of($r)->{code}, 'DATABASE_UNAVAILABLE', '  DATABASE_UNAVAILABLE');
ok($r->{headers}{'retry-after'}, '  with Retry-After');
ok(logged($r->{headers}{'x-request-id'}, qr/sign-in not started \(503\)/), '  logged with the request id');
$s->start_mysql;
wait_ok { $s->get('/ready')->{status} == 200 } 30, 'MySQL is back';
is(scalar(failures()), 0, '  and no audit row was written for it');

# ---- Secure cookies: the provider's redirect_url is https ---------------------------------------------------
$jar = CxIdp::Jar->new;
$r = CxIdp::http($jar, 'GET', "$base/api/v1/auth/login/tls");
is($r->{status}, 302, 'a sign-in with tls (https redirect_url) starts');
my ($sc) = grep { /^cx_sso_state=/ } cookies($r);
like($sc // '', qr/; Secure/, '  its state cookie is Secure');
my $a = CxIdp::http($jar, 'GET', $r->{headers}{location});
(my $back = $a->{headers}{location} // '') =~ s{^https://cp\.example\.test}{$base};
like($back, qr{^\Q$base\E/api/v1/auth/callback/tls\?}, 'the provider sends the browser to the https callback (called here over http)');
$r = CxIdp::http($jar, 'GET', $back);
is($r->{status}, 200, 'the callback signs in');
ok((grep { /^cx_sso_state=;/ && /Max-Age=0/ && /Secure/ } cookies($r)), '  deletes the state cookie with Secure');
ok((grep { /^cx_session=[^;]+;/ && /Secure/ && /HttpOnly/ } cookies($r)), '  sets a Secure session cookie');
my $token = json_of($r)->{data}{token};
$r = $s->post('/api/v1/auth/logout', undef, token => $token);
is($r->{status}, 200, 'logout');
ok((grep { /^cx_session=;/ && /Max-Age=0/ && /Secure/ } cookies($r)), '  deletes the session cookie with Secure, as it was set');
is(scalar(failures()), 0, 'a good sign-in and logout audit no failure');

is($s->stop, 0, 'stop exits 0');
done_testing;
