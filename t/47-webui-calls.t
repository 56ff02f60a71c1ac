# 47-webui-calls.t -- the Conduix web UI's own requests, as its code sends them (web-ui/src/services/api.ts:
# axios with Content-Type: application/json and Accept-Language on every call, Authorization: Bearer):
# the Users page (GET /users?page&page_size[&search][&role], reading data.users and data.total; PUT
# /users/:id/role {"role"}), the Login page's /auth/me, and the pipeline pages (data.items with status,
# a Pipeline, the history as an array). Our own shapes stay: the page keeps items, PUT /users/:id works.
use v5.36;
use Test::More;
use CxTest;
use CxIdp;
use JSON::PP;

my $fake = CxIdp->fake;
my $s = CxTest->new(workers => 2);
my $base = $s->base_url;
$s->set_config('auth.oidc' => [ $fake->provider('fake', $base) ], 'auth.admin_emails' => ['root@example.test']);
$s->write_config;
$s->start;

sub login($sub, $email, $name) {
    $fake->control(mode => 'valid', sub => $sub, email => $email, name => $name);
    my $jar = CxIdp::Jar->new;
    my $r = CxIdp::http($jar, 'GET', "$base/api/v1/auth/login/fake");
    my $a = CxIdp::http($jar, 'GET', $r->{headers}{location});
    my $c = CxIdp::http($jar, 'GET', $a->{headers}{location});
    die "login $sub: $c->{status} $c->{content}" unless $c->{status} == 200;
    my $d = decode_json($c->{content})->{data};
    return ($d->{token}, $d->{user});
}

# ui -- a request as the UI's axios client makes it.
sub ui($method, $path, $token, $body = undef) {
    return $s->request($method, "/api/v1$path", token => $token,
        headers => { 'Content-Type' => 'application/json', 'Accept-Language' => 'ko', Accept => 'application/json, text/plain, */*' },
        defined $body ? (body => $body) : ());
}

my ($root) = login('root-47', 'root@example.test', 'Root');
my ($t1, $u1) = login('kim-47', 'kim@example.test', 'Kim Min-jun');
my ($t2, $u2) = login('lee-47', 'lee@example.test', 'Lee Seo-yeon');

# ---- Login page: GET /auth/me with the token from /login?token= --------------------------------------
my $r = ui('GET', '/auth/me', $root);
ok($r->{json}{success} && $r->{json}{data}, '/auth/me: success and data (what Login.tsx checks)');
is_deeply([ @{ $r->{json}{data} }{qw(email name role)} ], [ 'root@example.test', 'Root', 'admin' ], '  email, name, role');
ok($r->{json}{data}{id}, '  id');

# ---- Users page: fetchUsers --------------------------------------------------------------------------
$r = ui('GET', '/users?page=1&page_size=20', $root);
is($r->{status}, 200, 'GET /users?page=1&page_size=20: 200');
ok($r->{json}{success}, '  success');
my $d = $r->{json}{data} // {};
is(ref $d->{users}, 'ARRAY', '  data.users is the array the page reads');
is_deeply([ map { $_->{email} } @{ $d->{users} } ], [qw(root@example.test kim@example.test lee@example.test)],
    '  with every user, oldest first');
is($d->{total}, 3, '  data.total');
is_deeply($d->{users}, $d->{items}, '  the same array as data.items (our page)');
is_deeply([ @$d{qw(page page_size total_pages)} ], [ 1, 20, 1 ], '  page, page_size, total_pages');
my ($kim) = grep { $_->{id} eq $u1->{id} } @{ $d->{users} };
is_deeply([ @{ $kim // {} }{qw(id email name provider role)} ], [ $u1->{id}, 'kim@example.test', 'Kim Min-jun', 'fake', 'viewer' ],
    '  a row has what the table shows: id, email, name, provider, role');
ok($kim->{created_at}, '  and created_at');

$r = ui('GET', '/users?page=1&page_size=20&search=KIM', $root);
is_deeply([ map { $_->{email} } @{ $r->{json}{data}{users} // [] } ], ['kim@example.test'], '  &search=KIM: e-mail or name, any case');
is($r->{json}{data}{total}, 1, '  total of the matches');
$r = ui('GET', '/users?page=1&page_size=20&search=' . CxIdp::uri_escape('Seo-yeon'), $root);
is_deeply([ map { $_->{email} } @{ $r->{json}{data}{users} // [] } ], ['lee@example.test'], '  &search=Seo-yeon: the name');
$r = ui('GET', '/users?page=1&page_size=20&search=%25', $root);
is($r->{json}{data}{total}, 0, '  &search=%: a percent sign is no wildcard');
$r = ui('GET', '/users?page=1&page_size=20&role=admin', $root);
is_deeply([ map { $_->{email} } @{ $r->{json}{data}{users} // [] } ], ['root@example.test'], '  &role=admin');
$r = ui('GET', '/users?page=1&page_size=20&search=e&role=viewer', $root);
is($r->{json}{data}{total}, 2, '  &search=e&role=viewer: both filters');
$r = ui('GET', '/users?page=1&page_size=20&search=' . ('x' x 256), $root);
is($r->{status}, 400, '  &search of 256 characters: 400');
ok(exists $r->{json}{details}{search}, '    naming search');
$r = ui('GET', '/users?page=1&page_size=20&search=%FF', $root);
is($r->{status}, 400, '  &search not UTF-8: 400');
is(ui('GET', '/users?page=1&page_size=20', $t1)->{status}, 403, 'a viewer: 403');

# ---- Users page: handleRoleChange ------------------------------------------------------------------------
my $audits = sub { $s->sql("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'user_role_change' AND target_id = ?", $u1->{id})->[0]{n} };
$r = ui('PUT', "/users/$u1->{id}/role", $root, { role => 'operator' });
is($r->{status}, 200, 'PUT /users/:id/role {"role":"operator"}: 200');
ok($r->{json}{success}, '  success (what the page checks)');
is($r->{json}{data}{role}, 'operator', '  data is the User with its new role');
is($audits->(), 1, '  audited as user_role_change');
is($s->sql('SELECT role FROM users WHERE id = ?', $u1->{id})->[0]{role}, 'operator', '  stored');
wait_ok { ui('GET', '/auth/me', $t1)->{json}{data}{role} eq 'operator' } 5, "  and the user's token acts as operator";
$r = ui('GET', '/users?page=1&page_size=20&role=operator', $root);
is_deeply([ map { $_->{id} } @{ $r->{json}{data}{users} // [] } ], [ $u1->{id} ], 'the list shows the new role');

for my $bad ([{ role => 'agent' }, 'role'], [{ role => 'root' }, 'role'], [{}, 'role'], [{ role => 'viewer', x => 1 }, 'x'],
    [{ role => "admin\x{0}" }, 'role'])
{
    $r = ui('PUT', "/users/$u1->{id}/role", $root, $bad->[0]);
    is($r->{status}, 400, 'PUT /users/:id/role ' . JSON::PP->new->canonical->encode($bad->[0]) . ': 400');
    ok(!$r->{json}{success} && exists $r->{json}{details}{ $bad->[1] }, "  success false, naming $bad->[1]")
        or diag explain $r->{json};
}
is($s->sql('SELECT role FROM users WHERE id = ?', $u1->{id})->[0]{role}, 'operator', 'the refusals changed nothing');
is(ui('PUT', '/users/00000000-0000-0000-0000-000000000000/role', $root, { role => 'viewer' })->{status}, 404, 'an unknown user: 404');
is(ui('PUT', "/users/$u2->{id}/role", $t1, { role => 'admin' })->{status}, 403, 'an operator may not change roles: 403');
is(ui('PUT', "/users/$u1->{id}", $root, { role => 'viewer' })->{json}{data}{role}, 'viewer',
    'PUT /users/:id (our route) does the same');
is($audits->(), 2, '  audited');

# ---- the pipeline pages ---------------------------------------------------------------------------------
$r = ui('POST', '/pipelines', $root, { name => 'ui-47', description => 'made as the UI does', config_yaml => "version: \"1.0\"\n" });
is($r->{status}, 201, 'Pipelines: createPipeline {name, description, config_yaml}: 201');
my $pid = $r->{json}{data}{id};
$r = ui('GET', '/pipelines?page=1&page_size=20', $root);
ok($r->{json}{success}, 'getPipelines: success');
my ($p) = grep { $_->{id} eq ($pid // '') } @{ $r->{json}{data}{items} // [] };
is($p->{status}, 'stopped', '  data.items carry status (the dashboard counts running/stopped/failed)');
is($r->{json}{data}{total}, 1, '  data.total');
$r = ui('GET', "/pipelines/$pid", $root);
ok($r->{json}{success} && $r->{json}{data}{config_yaml}, 'PipelineDetail: getPipeline');
ok(!grep({ !exists $r->{json}{data}{$_} } qw(id name description created_at updated_at config_yaml)), '  with the fields it shows');
$r = ui('GET', "/pipelines/$pid/history", $root);
ok($r->{json}{success}, 'getPipelineHistory: success');
is(ref $r->{json}{data}, 'ARRAY', '  data is the array of runs the table takes');
$r = ui('PUT', "/pipelines/$pid", $root, { name => 'ui-47', description => 'edited', config_yaml => "version: \"1.0\"\n" });
is($r->{status}, 200, 'updatePipeline with the form values: 200');
is(ui('DELETE', "/pipelines/$pid", $root)->{status}, 200, 'deletePipeline: 200');

is($s->stop, 0, 'stop exits 0');
done_testing;
