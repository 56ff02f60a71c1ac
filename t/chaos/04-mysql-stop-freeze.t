# chaos 4 -- MySQL stopped for 30 s, then frozen (SIGSTOP) for 20 s, under load: the targets of the
# MySQL breaker (API calls get their 503 DATABASE_UNAVAILABLE with Retry-After within 2 s, /health
# answers within 1 s, REST heartbeats keep an agent online while Redis is up, everything is served again
# within a second of MySQL's return), and nothing acknowledged before the outages is lost.
use v5.36;
use Test::More;
use CxTest;
use CxLoad;
use CxChaos;
use CxAgent;
use Time::HiRes qw(sleep time);

CxChaos::scenario('4 MySQL stopped 30 s, frozen 20 s');
my $s = CxChaos::server(workers => 4, config => { 'database.query_timeout' => '800ms' });    # the default, which it tests
my $sim = CxChaos::sim($s, 'c4', '-n', 4, '--prefix', 'c4-agent-');
ok(CxTest::wait_until(sub { CxChaos::online($s, 'c4-agent-') == 4 }, 30, 'agents online'), '4 agents online');
my @pids = CxChaos::pipelines($s, 8, 'c4');
my $oper = $s->token(role => 'operator', sub => 'c4-oper');
for my $p (@pids[0 .. 3]) {
    my $r = $s->post("/api/v1/pipelines/$p/start", undef, token => $oper);
    BAIL_OUT("start: $r->{status} $r->{content}") unless $r->{status} == 200;
}
ok(CxTest::wait_until(sub { !grep { (CxAgent::run_status($s, $_) // '') ne 'running' } @pids[0 .. 3] }, 30, 'running'),
    '4 pipelines running, acknowledged');
my $rest_token = $s->token(role => 'agent', sub => 'c4-rest');
my $beat = sub { { agent_id => 'c4-rest', timestamp => CxAgent::now_rfc3339(), cpu_usage => 1, memory_usage => 1, disk_usage => 1,
    pipelines => [] } };
is($s->post('/api/v1/agents/c4-rest/heartbeat', $beat->(), token => $rest_token)->{status}, 200, 'a REST agent');
ok(CxTest::wait_until(sub { CxChaos::online($s, 'c4-rest') == 1 }, 30, 'REST agent online'), 'the REST agent is online');
# The REST agent beats every second for the whole scenario, between the outages too (the figures of an
# outage take seconds to compute: longer than agents.heartbeat_timeout); each outage measures its own.
my $keeper = CxLoad->start($s, name => 'beat-keeper', clients => 1, pause => 1,
    request => sub ($c, $n) { [POST => '/api/v1/agents/c4-rest/heartbeat', body => $beat->(), token => $rest_token] });

# What was acknowledged before: pipelines, runs, commands.
my $before = snapshot();
sub snapshot() {
    return {
        pipelines => $s->sql('SELECT COUNT(*) AS n FROM pipelines')->[0]{n},
        running => $s->sql("SELECT COUNT(*) AS n FROM pipeline_runs WHERE status = 'running'")->[0]{n},
        acked => $s->sql("SELECT COUNT(*) AS n FROM agent_commands WHERE status = 'acked'")->[0]{n},
        audit => $s->sql('SELECT COUNT(*) AS n FROM audit_log')->[0]{n},
    };
}
my $admin = $s->admin_token;
my $t_start = time;

# outage -- under load, FAULT for SECONDS, then MEND; the figures of it.
sub outage($label, $seconds, $fault, $mend, %bound) {
    my %load = (
        api => CxLoad->start($s, name => "$label-api", clients => 4,
            request => sub ($c, $n) { [GET => "/api/v1/pipelines/$pids[$n % @pids]", token => $admin] }),
        list => CxLoad->start($s, name => "$label-list", clients => 2, keep_alive => 0,
            request => sub ($c, $n) { [GET => '/api/v1/pipelines?page_size=5', token => $admin] }),
        health => CxLoad->start($s, name => "$label-health", clients => 2, keep_alive => 0, pause => 0.05,
            request => sub ($c, $n) { [GET => '/health'] }),
        beat => CxLoad->start($s, name => "$label-beat", clients => 1, pause => 1,
            request => sub ($c, $n) { [POST => '/api/v1/agents/c4-rest/heartbeat', body => $beat->(), token => $rest_token] }),
    );
    sleep 2;
    my $t0 = time;
    $fault->();
    sleep $seconds;
    $mend->();
    my $t1 = time;
    sleep 4;
    my %r = map { ($_, [$load{$_}->stop]) } keys %load;
    my @api = (@{ $r{api} }, @{ $r{list} });
    my @during = CxLoad::between(\@api, $t0, $t1);
    my @u = grep { $_->{status} == 503 } @during;
    my @bad = grep { !($_->{status} == 200 || ($_->{status} == 503 && $_->{code} eq 'DATABASE_UNAVAILABLE' && $_->{retry_after} ne '-')) }
        @during;
    my $api_max = CxLoad::max_dt(@during);
    my $health_max = CxLoad::max_dt(CxLoad::between($r{health}, $t0, $t1 + 1));
    my @hbad = grep { $_->{status} != 200 } CxLoad::between($r{health}, $t0, $t1 + 1);
    my @beats = CxLoad::between($r{beat}, $t0, $t1);
    my $back = CxLoad::first_ok_after(\@api, $t1);
    my $recover = defined $back ? $back - $t1 : 99;
    CxChaos::figure("$label: API requests (200 / 503)", scalar(@during) . ' (' . CxLoad::by_status(@during) . ')', '', @u > 0);
    CxChaos::figure("$label: answers other than 200 or 503 DATABASE_UNAVAILABLE with Retry-After", scalar @bad, '0', !@bad)
        or diag explain [@bad[0 .. 2]];
    CxChaos::figure("$label: slowest API request", sprintf('%.3f s', $api_max), "$bound{api} s", $api_max < $bound{api});
    # /health may wait behind a worker in its one query_timeout: the 1 s target, asserted with 20 % for a loaded machine
    CxChaos::figure("$label: slowest /health", sprintf('%.3f s', $health_max) . (@hbad ? ', ' . @hbad . ' failed' : ''),
        "$bound{health} s (+20 %)", $health_max < $bound{health} * 1.2 && !@hbad);
    # A REST beat goes to Redis, so MySQL's outage must not fail it; one whose Redis call timed out
    # (redis.timeout 500 ms: the machine stalled) has only MySQL left, which is away: that 503 is right.
    my @rt = map { CxChaos::unix_time($_->{time}) } grep { ($_->{msg} // '') =~ /^redis: .*timed out/ } $s->log_lines;
    my @beat_bad = grep { $_->{status} != 200 } @beats;
    my @met = grep { my $b = $_; grep { $_ >= $b->{t} - 0.05 && $_ <= $b->{t} + $b->{dt} + 0.05 } @rt } @beat_bad;
    CxChaos::figure("$label: REST heartbeats answered", scalar(grep { $_->{status} == 200 } @beats) . ' of ' . scalar(@beats)
        . (@met ? ' (' . @met . ' met a Redis timeout)' : ''), 'all but those that met a Redis timeout',
        @beats >= $seconds / 2 && @beat_bad == @met) or diag explain [@beat_bad];
    CxChaos::figure("$label: time to recover (every client served)", sprintf('%.3f s', $recover), "$bound{recover} s",
        $recover < $bound{recover});
}

# Stopped: the connections are refused at once; start_mysql returns when MariaDB answers again.
outage('MySQL stopped 30 s', 30, sub { $s->stop_mysql }, sub { $s->start_mysql }, api => 2, health => 1, recover => 1);
# Frozen: every worker waits database.query_timeout (800 ms) once, then fails at once.
outage('MySQL frozen 20 s', 20, sub { $s->freeze_mysql }, sub { $s->thaw_mysql }, api => 2, health => 1, recover => 1);

my $after = snapshot();
CxChaos::figure('acknowledged before and kept (pipelines, running runs, acked commands, audit rows)',
    "$after->{pipelines}/$after->{running}/$after->{acked}/$after->{audit} of $before->{pipelines}/$before->{running}/$before->{acked}/$before->{audit}",
    'all', $after->{pipelines} == $before->{pipelines} && $after->{running} == $before->{running}
        && $after->{acked} >= $before->{acked} && $after->{audit} >= $before->{audit});
my $off = CxChaos::offline_transitions($s, 'c4-', $t_start);
CxChaos::figure('agents declared offline (4 on Redis, 1 on REST heartbeats)', $off, '0', $off == 0);
is(CxChaos::online($s, 'c4-'), 5, 'every agent online at the end');
$keeper->stop;
is($s->get('/ready')->{status}, 200, '/ready 200 at the end');
is($s->stop, 0, 'stop exits 0');
done_testing;
