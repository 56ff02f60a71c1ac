# 87-start-round-trips.t -- what a POST /pipelines/:id/start costs MariaDB, from its general log: four
# round trips before the publish (the transaction begun with its three reads; the delivery lock with
# the check for older commands; the run's and the command's inserts; the audit row with the COMMIT),
# then the lock given back. Each is one multi-statement text whose results the start uses as before:
# the answer holds the run and the sent command as written, the agent receives the command, and MySQL
# has the run, the command and the audit row. A start refused (the pipeline already running; one that
# does not exist) is one round trip and a ROLLBACK, writing nothing. Then, through the same calls, a
# start that loses its race to a concurrent one (the unique key refusing an INSERT … RETURNING inside
# the multi-statement text) is a 409 and the worker's connection serves the next start.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;

my $s = CxAgent::server(workers => 1, 'agents.heartbeat_timeout' => '10s');
my $P = '/api/v1/pipelines';
my $oper = $s->token(role => 'operator', sub => 't87-oper');
my $ag = CxAgent->new(id => 't87-agent', ack => 'all', beat => 1)->start;
ok($ag->wait_online($s), 'agent online');

my $root = CxTest::root_dbh();
my ($old_output) = $root->selectrow_array('SELECT @@GLOBAL.log_output');
my ($old_on) = $root->selectrow_array('SELECT @@GLOBAL.general_log');
END { eval { $root->do("SET GLOBAL general_log = $old_on"); $root->do("SET GLOBAL log_output = '$old_output'") } if $root }

# logged -- the server's statements while CODE runs: [thread, command, text] in order.
sub logged($code) {
    $root->do('SET GLOBAL general_log = 0');
    $root->do("SET GLOBAL log_output = 'TABLE'");
    $root->do('TRUNCATE TABLE mysql.general_log');
    $root->do('SET GLOBAL general_log = 1');
    $code->();
    sleep 0.3;
    $root->do('SET GLOBAL general_log = 0');
    my $rows = $root->selectall_arrayref(
        "SELECT thread_id, command_type, CONVERT(argument USING utf8mb4) FROM mysql.general_log ORDER BY event_time");
    $root->do('TRUNCATE TABLE mysql.general_log');
    return @$rows;
}

# of_start -- the round trips of the connection that read pipeline $id's config, from that read on.
sub of_start($id, @rows) {
    my ($first) = grep { $_->[2] =~ /^START TRANSACTION;SELECT id, config_yaml FROM pipelines WHERE id IN \('\Q$id\E'\)/ } @rows;
    return () unless $first;
    my @mine = grep { $_->[0] == $first->[0] && $_->[1] =~ /^(Query|Execute)$/ } @rows;
    shift @mine while @mine && $mine[0] != $first;
    return map { $_->[2] } @mine;
}

my $p = CxAgent::create_pipeline($s, 't87-a');
my $r;
my @rows = logged(sub { $r = $s->auth_post("$P/$p->{id}/start", undef, token => $oper) });
is($r->{status}, 200, 'start: 200') or diag $r->{content};
my ($run, $cmd) = @{ $r->{json}{data} // {} }{qw(run command)};
my @trips = of_start($p->{id}, @rows);
my @until = @trips;
pop @until while @until && $until[-1] !~ /RELEASE_LOCK/;
is(scalar(@until), 5, 'five round trips: four before the publish, the lock given back after it')
    or diag explain [map { substr($_, 0, 160) } @trips];
like($until[0] // '', qr/^START TRANSACTION;SELECT id, config_yaml FROM pipelines .* LOCK IN SHARE MODE;SELECT .* FROM pipeline_runs WHERE active_pipeline_id IN .*;SELECT a\.id AS id, .* FROM agents a WHERE a\.status = 'online'/s,
    '1: the transaction begun with the pipeline, its active run and the agents\' loads');
like($until[1] // '', qr/^SELECT GET_LOCK\('cxcmd:[^']+', 0\);SELECT DISTINCT agent_id, pipeline_id FROM agent_commands /s,
    '2: the delivery lock, then the older commands waiting');
like($until[2] // '', qr/^INSERT INTO pipeline_runs .* RETURNING .*;INSERT INTO agent_commands .* RETURNING /s,
    '3: the run and its command, both RETURNING what was written');
like($until[3] // '', qr/^INSERT INTO audit_log .*;COMMIT$/s, '4: the audit row and the COMMIT');
like($until[4] // '', qr/RELEASE_LOCK/, '5: after the publish, the lock given back');

like($run->{id} // '', qr/^[0-9a-f-]{36}$/, 'the answer holds the run');
is($run->{status}, 'pending', 'run pending');
is($run->{agent_id}, 't87-agent', 'on the online agent');
like($run->{created_at} // '', qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, 'run.created_at as written');
is($cmd->{status}, 'sent', 'command sent at once');
is($cmd->{attempts}, 1, 'attempt 1');
is($cmd->{run_id}, $run->{id}, 'command.run_id');
like($cmd->{expires_at} // '', qr/^\d{4}-\d\d-\d\dT/, 'command.expires_at as written');
wait_ok { $ag->commands_of($cmd->{id}) } 10, 'the agent received start_pipeline';
is($s->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE pipeline_id = ?', $p->{id})->[0]{n}, 1, 'one run in MySQL');
like($s->sql("SELECT status FROM agent_commands WHERE id = ?", $cmd->{id})->[0]{status} // '', qr/^(sent|acked)$/, 'the command row sent (or acknowledged since)')
    or diag explain $s->sql("SELECT status FROM agent_commands WHERE id = ?", $cmd->{id});
is($s->sql("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'pipeline_start' AND target_id = ?", $p->{id})->[0]{n}, 1,
    'one audit row');

# refused: already running, and a pipeline that does not exist
@rows = logged(sub { $r = $s->auth_post("$P/$p->{id}/start", undef, token => $oper) });
is($r->{status}, 409, 'a second start: 409');
is($r->{json}{code}, 'INVALID_STATE', 'INVALID_STATE');
@trips = of_start($p->{id}, @rows);
is(scalar(@trips), 2, 'refused after one round trip, then rolled back') or diag explain [map { substr($_, 0, 120) } @trips];
is($trips[1] // '', 'ROLLBACK', 'ROLLBACK');
my $ghost = '00000000-0000-4000-8000-000000008787';
@rows = logged(sub { $r = $s->auth_post("$P/$ghost/start", undef, token => $oper) });
is($r->{status}, 404, 'start of an unknown pipeline: 404');
@trips = of_start($ghost, @rows);
is(join('|', map { /^(\S+)/ ? $1 : '' } @trips), 'START|ROLLBACK', 'one round trip, then rolled back');
is($s->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE pipeline_id IN (?, ?)', $p->{id}, $ghost)->[0]{n}, 1, 'nothing written');

# a lost race inside the multi-statement text: a run inserted between the read and the insert
my $q = CxAgent::create_pipeline($s, 't87-b');
my $lock = CxTest::root_dbh()->clone({ AutoCommit => 1 });
$lock->do("USE `" . $s->db_name . "`");
$lock->do('BEGIN');
$lock->do("INSERT INTO pipeline_runs (id, pipeline_id, agent_id, status, created_at, updated_at) VALUES (UUID(), ?, 't87-agent', 'pending', NOW(3), NOW(3))",
    undef, $q->{id});
my $h = CxTest::run_cmd({ background => 1 }, 'curl', '-s', '-w', '\n%{http_code}', '-X', 'POST', '-H', "Authorization: Bearer $oper",
    $s->base_url . "$P/$q->{id}/start");
sleep 1;    # the start reads no active run (the other is not committed) and waits on the unique key in its INSERT
$lock->do('COMMIT');
my $res = CxTest::finish_cmd($h, 20);
my ($body, $code) = $res->{out} =~ /\A(.*)\n(\d+)\z/s;
is($code, '409', 'the start that lost the race: 409') or diag $res->{out};
like($body // '', qr/"error":"pipeline is already running"/,
    'refused by the unique key inside the multi-statement text (not by the read, which names the run)');
is($s->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE pipeline_id = ?', $q->{id})->[0]{n}, 1, 'one run: the winner\'s');
is($s->sql("SELECT COUNT(*) AS n FROM agent_commands WHERE pipeline_id = ?", $q->{id})->[0]{n}, 0, 'no command of the loser');
my $c = CxAgent::create_pipeline($s, 't87-c');
$r = $s->auth_post("$P/$c->{id}/start", undef, token => $oper);
is($r->{status}, 200, 'the worker\'s connection serves the next start') or diag $r->{content};

done_testing();
