# 43-sessions.t -- users, sessions, revocation and role changes: the admin API (GET /users, PUT /users/:id,
# GET /users/:id/sessions, DELETE /sessions/:jti) with its refusals; a role change or a revocation applies
# to the user's existing tokens on every worker within a second, also with Redis down and on a worker
# that starts after the revocation; tokens of `conduix-cp token` are recorded and revocable by jti.
use v5.36;
use Test::More;
use CxTest qw(:DEFAULT jwt_decode jwt_hs256);
use CxIdp;
use JSON::PP;
use MIME::Base64 qw(encode_base64url);

my $fake = CxIdp->fake;
my $s = CxTest->new(workers => 2);
my $base = $s->base_url;
$s->set_config('auth.oidc' => [ $fake->provider('fake', $base) ]);
$s->write_config;
$s->start;
my $admin = $s->admin_token;

sub login($sub) {
    $fake->control(mode => 'valid', sub => $sub, email => "$sub\@example.test");
    my $jar = CxIdp::Jar->new;
    my $r = CxIdp::http($jar, 'GET', "$base/api/v1/auth/login/fake");
    my $a = CxIdp::http($jar, 'GET', $r->{headers}{location});
    my $c = CxIdp::http($jar, 'GET', $a->{headers}{location}, headers => { 'User-Agent' => "browser-of-$sub" });
    my $d = decode_json($c->{content});
    die "login $sub: $c->{status} $c->{content}" unless $c->{status} == 200;
    return ($d->{data}{token}, $d->{data}{user});
}

# everywhere -- CODE(response) holds for the answers of each worker (CxTest::each_worker: the access log
# tells which worker answered; fresh connections alone may all land on one).
sub everywhere($method, $path, $tok, $code, $body = undef) {
    return $s->each_worker(sub ($rid) {
        $s->request($method, $path, token => $tok, ua => HTTP::Tiny->new(keep_alive => 0), headers => { 'X-Request-ID' => $rid },
            defined $body ? (body => ref $body eq 'CODE' ? $body->() : $body) : ());
    }, $code, quiet => 1);
}

my $n_audit = sub ($action) { $s->sql('SELECT COUNT(*) AS n FROM audit_log WHERE action = ?', $action)->[0]{n} };

# ---- users ------------------------------------------------------------------------------------------
my ($t1, $u1) = login('u1');
is($u1->{role}, 'viewer', 'u1 signs in as viewer (auth.default_role)');
my $r = $s->auth_get('/api/v1/users');
is($r->{status}, 200, 'GET /users: 200 for an admin');
is($r->{json}{data}{total}, 1, 'one user');
is($r->{json}{data}{items}[0]{id}, $u1->{id}, 'u1');
is_deeply([sort keys %{ $r->{json}{data}{items}[0] }], [sort qw(id email name provider role created_at last_login_at)],
    'a User has the fields of the contract');
is($s->auth_get('/api/v1/users?role=viewer')->{json}{data}{total}, 1, '?role=viewer');
is($s->auth_get('/api/v1/users?role=admin')->{json}{data}{total}, 0, '?role=admin');
$r = $s->auth_get('/api/v1/users?role=root');
is($r->{status}, 400, '?role=root: 400');
ok(exists $r->{json}{details}{role}, 'naming role');
is($s->auth_get('/api/v1/users?page_size=0')->{status}, 400, '?page_size=0: 400');
is($s->auth_get("/api/v1/users/$u1->{id}")->{json}{data}{email}, 'u1@example.test', 'GET /users/:id');
is($s->auth_get('/api/v1/users/00000000-0000-0000-0000-000000000000')->{status}, 404, 'GET /users/<unknown>: 404');
is($s->get('/api/v1/users', token => $t1)->{status}, 403, 'GET /users with a viewer token: 403');

# ---- role changes --------------------------------------------------------------------------------------
my $pipeline = { name => 'p-43', config_yaml => "a: 1\n" };
is($s->post('/api/v1/pipelines', $pipeline, token => $t1)->{status}, 403, 'the viewer cannot create a pipeline');
for my $bad ([{ role => 'agent' }, 'role'], [{ role => 'root' }, 'role'], [{}, 'role'], [{ role => 'admin', name => 'x' }, 'name'],
    [[1], 'body'], [{ role => 5 }, 'role'])
{
    my ($body, $field) = @$bad;
    $r = $s->auth_put("/api/v1/users/$u1->{id}", $body);
    is($r->{status}, 400, 'PUT /users/:id ' . encode_json($body) . ': 400');
    ok(exists $r->{json}{details}{$field}, "  naming $field") or diag explain $r->{json};
}
is($s->auth_put('/api/v1/users/00000000-0000-0000-0000-000000000000', { role => 'admin' })->{status}, 404,
    'PUT /users/<unknown>: 404');
is($s->put("/api/v1/users/$u1->{id}", { role => 'admin' }, token => $t1)->{status}, 403, 'a viewer cannot promote itself');
is($s->sql('SELECT role FROM users WHERE id = ?', $u1->{id})->[0]{role}, 'viewer', 'the refusals changed nothing');
is($n_audit->('user_role_change'), 0, 'and audited nothing');

$r = $s->auth_put("/api/v1/users/$u1->{id}", { role => 'operator' });
is($r->{status}, 200, 'PUT /users/:id {"role":"operator"}: 200');
is($r->{json}{data}{role}, 'operator', 'the user is operator');
my $aud = $s->sql("SELECT * FROM audit_log WHERE action = 'user_role_change'")->[0] // {};
is($aud->{target_id}, $u1->{id}, 'the role change is audited');
like($aud->{before_json} // '', qr/"role":"viewer"/, '  with the role before');
like($aud->{after_json} // '', qr/"role":"operator"/, '  and after');
is($aud->{actor}, 'cx-test-admin', '  and who');
my $k = 0;
wait_ok {
    everywhere('POST', '/api/v1/pipelines', $t1, sub ($x) { $x->{status} == 201 }, sub { +{ %$pipeline, name => 'p-43-' . $k++ } });
} 1.5, "within a second u1's existing (viewer-claim) token acts as operator on every worker";
is($s->get('/api/v1/auth/me', token => $t1)->{json}{data}{role}, 'operator', '/auth/me says operator');
is($s->auth_put("/api/v1/users/$u1->{id}", { role => 'operator' })->{status}, 200, 'the same role again: 200');
is($n_audit->('user_role_change'), 1, '  and no second audit row');
is($s->auth_put("/api/v1/users/$u1->{id}", { role => 'viewer' })->{status}, 200, 'back to viewer');
wait_ok { everywhere('POST', '/api/v1/pipelines', $t1, sub ($x) { $x->{status} == 403 }, $pipeline) } 1.5,
    'within a second the same token is refused operator actions on every worker';

# ---- sessions and revocation ---------------------------------------------------------------------------
is($s->get('/api/v1/pipelines', token => $t1)->{status}, 200, 'u1 reads');
$r = $s->auth_get("/api/v1/users/$u1->{id}/sessions");
is($r->{status}, 200, 'GET /users/:id/sessions: 200');
my $jti1 = jwt_decode($t1)->{claims}{jti};
my ($ss) = grep { $_->{jti} eq $jti1 } @{ $r->{json}{data}{items} // [] };
ok($ss, "u1's token is listed by its jti");
is($ss->{user_agent}, 'browser-of-u1', '  with the user agent of the sign-in');
is($ss->{ip_address}, '127.0.0.1', '  its address');
ok($ss->{last_seen_at}, '  when it was last used');
ok($ss->{expires_at} && $ss->{created_at}, '  issued and expires');
ok($ss->{active}, '  active');
is($s->auth_get('/api/v1/users/00000000-0000-0000-0000-000000000000/sessions')->{status}, 404, 'sessions of an unknown user: 404');
is($s->get("/api/v1/users/$u1->{id}/sessions", token => $t1)->{status}, 403, 'a viewer cannot list sessions');
is($s->delete("/api/v1/sessions/$jti1", token => $t1)->{status}, 403, 'a viewer cannot revoke by jti');

$r = $s->auth_delete("/api/v1/sessions/$jti1");
is($r->{status}, 200, 'DELETE /sessions/:jti: 200');
ok(!$r->{json}{data}{active}, 'the session is no longer active');
is($r->{json}{data}{revoked_by}, 'cx-test-admin', 'revoked_by');
is($n_audit->('session_revoke'), 1, 'the revocation is audited');
wait_ok { everywhere('GET', '/api/v1/pipelines', $t1, sub ($x) { $x->{status} == 401 }) } 1.5,
    'within a second the revoked token is refused on every worker';
is($s->auth_delete("/api/v1/sessions/$jti1")->{status}, 200, 'revoking again: 200 (no change)');

# a worker started after the revocation knows it too
my ($w) = $s->worker_pids;
kill 'KILL', $w;
wait_until { !grep { $_ == $w } $s->worker_pids and $s->worker_pids == 2 } 30, 'the worker is respawned';
ok($s->each_worker(sub ($rid) { $s->get('/api/v1/pipelines', token => $t1, 'X-Request-ID' => $rid, ua => HTTP::Tiny->new) },
    sub ($x) { $x->{status} == 401 }), 'a respawned worker refuses the revoked token (each worker answered)');

# ---- tokens of conduix-cp token ----------------------------------------------------------------------
my $bot = $s->token(role => 'operator', sub => 'bot-43');
my $bjti = jwt_decode($bot)->{claims}{jti};
my $row = $s->sql('SELECT * FROM sessions WHERE jti = ?', $bjti)->[0] // {};
is($row->{user_id}, 'bot-43', 'conduix-cp token records its jti (sessions.user_id = --sub)');
is($row->{user_agent}, 'conduix-cp token', '  as made by conduix-cp token');
$r = $s->get('/api/v1/auth/me', token => $bot);
is($r->{status}, 200, '/auth/me for a token without a users row: 200');
is_deeply([@{ $r->{json}{data} }{qw(id role provider)}], ['bot-43', 'operator', undef], '  answered from the claims');
is($s->auth_delete("/api/v1/sessions/$bjti")->{status}, 200, 'the CLI token is revoked by its jti');
wait_ok { everywhere('GET', '/api/v1/auth/me', $bot, sub ($x) { $x->{status} == 401 }) } 1.5, '  and refused everywhere';

$r = $s->auth_delete('/api/v1/sessions/never-recorded-jti');
is($r->{status}, 200, 'a jti that was never recorded can be revoked too');
like($r->{json}{message} // '', qr/never recorded/, '  and the answer says so');
my $claims = $s->claims(sub => 'handmade', role => 'viewer', jti => 'never-recorded-jti');
my $hand = jwt_hs256($s->secret, $claims);
wait_ok { everywhere('GET', '/api/v1/pipelines', $hand, sub ($x) { $x->{status} == 401 }) } 1.5,
    '  a token with that jti is refused';
is($s->auth_delete('/api/v1/sessions/' . ('x' x 65))->{status}, 400, 'a jti longer than 64: 400');

# ---- logout with Redis down ----------------------------------------------------------------------------
my ($t2) = login('u2');
$s->stop_redis;
is($s->get('/api/v1/pipelines', token => $t2)->{status}, 200, 'Redis is down; u2 reads');
$r = $s->post('/api/v1/auth/logout', undef, token => $t2);
is($r->{status}, 200, 'logout with Redis down: 200');
wait_ok { everywhere('GET', '/api/v1/pipelines', $t2, sub ($x) { $x->{status} == 401 }) } 1.5,
    'within a second the token is refused on every worker, Redis still down';
$s->start_redis;
is($s->post('/api/v1/auth/logout', undef, token => $t2)->{status}, 401, 'a second logout with the same token: 401');
is($n_audit->('logout'), 1, 'one logout audited');

# ---- HS256 exactly -------------------------------------------------------------------------------------
my $c = $s->claims(role => 'admin');
is($s->get('/api/v1/pipelines', token => jwt_hs256($s->secret, $c))->{status}, 200, 'an HS256 token of the secret: 200');
is($s->get('/api/v1/pipelines', token => jwt_hs256($s->secret, $c, { alg => 'hs256', typ => 'JWT' }))->{status}, 401,
    'the same with alg "hs256": 401');
my $none = encode_base64url(encode_json({ alg => 'none' })) . '.' . encode_base64url(encode_json($c)) . '.';
is($s->get('/api/v1/pipelines', token => $none)->{status}, 401, 'alg none: 401');

is($s->stop, 0, 'stop exits 0');
done_testing;
