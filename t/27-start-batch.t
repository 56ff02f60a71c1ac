# 27-start-batch.t -- the POST /pipelines/:id/start requests a worker reads in one turn of its loop are
# one batch of the run service (one transaction, one pipelined publish), each answered for itself: 50
# distinct pipelines at once (each 200 with its own run and command, its own audit row and request id,
# its command received by its agent); ten starts of one pipeline among ten others (one wins, nine 409
# INVALID_STATE, one run); a mixed burst (404, 400, 409 NO_AGENT_AVAILABLE, 409 INVALID_STATE, 202
# queued, 200) where each refusal writes nothing. conduix_api_starts_batched_total counts the starts,
# conduix_api_start_batches_total the batches: fewer than the starts.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;

my $s = CxAgent::server(workers => 2, 'agents.heartbeat_timeout' => '10s');
my $P = '/api/v1/pipelines';
my $oper = $s->token(role => 'operator', sub => 't27-oper');
my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

my @agents = map { CxAgent->new(id => "t27-agent-$_", ack => 'all', beat => 1)->start } 1 .. 3;
ok($_->wait_online($s), $_->id . ' online') for @agents;
my %agent = map { ($_->id => $_) } @agents;

sub counter($name) { $s->metric($name) // 0 }
sub counters { (counter('conduix_api_start_batches_total'), counter('conduix_api_starts_batched_total')) }

# start_burst -- POST …/start for each [pipeline id, request id, body or undef], all at once.
sub start_burst(@specs) {
    return $s->burst(map { { method => 'POST', path => "$P/$_->[0]/start", token => $oper, headers => { 'X-Request-ID' => $_->[1] },
        defined $_->[2] ? (body => $_->[2]) : () } } @specs);
}

sub audit_of($rid) {
    $s->sql("SELECT target_id, request_id, actor FROM audit_log WHERE action = 'pipeline_start' AND request_id = ?", $rid);
}

# ---- 50 distinct pipelines at once ----------------------------------------------------------------
my @p = map { CxAgent::create_pipeline($s, "t27-$_") } 1 .. 50;
my ($b0, $n0) = counters();
my @a = start_burst(map { [$p[$_]{id}, "t27-a-$$-$_"] } 0 .. 49);
is(scalar(grep { $_->{status} == 200 } @a), 50, '50 starts at once: each 200') or diag explain [map { $_->{status} } @a];
my $own = grep {
    my ($r, $d) = ($a[$_], $a[$_]{json}{data} // {});
    ($d->{run}{pipeline_id} // '') eq $p[$_]{id} && ($d->{run}{id} // '') =~ $UUID && ($d->{command}{run_id} // '') eq $d->{run}{id}
        && ($d->{command}{type} // '') eq 'start_pipeline' && ($d->{command}{status} // '') eq 'sent'
        && ($d->{command}{agent_id} // '') eq ($d->{run}{agent_id} // '-') && ($r->{request_id} // '') eq "t27-a-$$-$_"
} 0 .. 49;
is($own, 50, 'each answer holds its own pipeline\'s run and sent command, and its own request id');
my %runs = map { ($_->{json}{data}{run}{id} // '') => 1 } @a;
is(scalar(keys %runs), 50, 'fifty distinct runs');
is($s->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE pipeline_id IN (' . join(',', map { "'$_->{id}'" } @p) . ')')->[0]{n}, 50,
    'one run per pipeline in MySQL');
is($s->sql("SELECT COUNT(DISTINCT pipeline_id) AS n FROM agent_commands WHERE type = 'start_pipeline'")->[0]{n}, 50,
    'one start command per pipeline');
my $audited = grep {
    my $row = audit_of("t27-a-$$-$_");
    @$row == 1 && $row->[0]{target_id} eq $p[$_]{id} && $row->[0]{actor} eq 't27-oper'
} 0 .. 49;
is($audited, 50, 'each start its own audit row: its pipeline, its request id, its caller');
my %per_agent;
$per_agent{ $_->{json}{data}{run}{agent_id} // '' }++ for @a;
is(join(',', sort keys %per_agent), join(',', sort keys %agent), 'the starts are spread over the three agents')
    or diag explain \%per_agent;
wait_ok {
    50 == grep { my $d = $_->{json}{data}; $agent{ $d->{run}{agent_id} } && $agent{ $d->{run}{agent_id} }->commands_of($d->{command}{id}) } @a
} 20, 'each command reached its agent';
my ($b1, $n1) = counters();
is($n1 - $n0, 50, 'the 50 starts went through the batch (conduix_api_starts_batched_total)');
cmp_ok($b1 - $b0, '<', 50, 'in fewer batches (' . ($b1 - $b0) . ', conduix_api_start_batches_total)');

# ---- one pipeline ten times at once, among ten others ---------------------------------------------
my $q = CxAgent::create_pipeline($s, 't27-contested');
my @others = map { CxAgent::create_pipeline($s, "t27-other-$_") } 1 .. 10;
my @specs = map { ([$q->{id}, "t27-q-$$-$_"], [$others[$_]{id}, "t27-o-$$-$_"]) } 0 .. 9;
my @c = start_burst(@specs);
my @mine = @c[grep { $_ % 2 == 0 } 0 .. $#c];
my @rest = @c[grep { $_ % 2 == 1 } 0 .. $#c];
my @won = grep { $_->{status} == 200 || $_->{status} == 202 } @mine;
is(scalar(@won), 1, 'ten starts of one pipeline at once: one accepted') or diag explain [map { $_->{status} } @mine];
is(scalar(grep { $_->{status} == 409 && ($_->{json}{code} // '') eq 'INVALID_STATE' && ($_->{json}{error} // '') =~ /already running/ } @mine),
    9, 'nine 409 INVALID_STATE "pipeline is already running"');
is(scalar(grep { $rest[$_]{status} == 200 && ($rest[$_]{json}{data}{run}{pipeline_id} // '') eq $others[$_]{id} } 0 .. 9), 10,
    'the ten other pipelines: each 200 with its own run');
is($s->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE pipeline_id = ?', $q->{id})->[0]{n}, 1, 'the contested pipeline: one run');
is($s->sql("SELECT COUNT(*) AS n FROM agent_commands WHERE pipeline_id = ? AND type = 'start_pipeline'", $q->{id})->[0]{n}, 1,
    'and one start command');
my $arows = $s->sql("SELECT request_id FROM audit_log WHERE action = 'pipeline_start' AND target_id = ?", $q->{id});
is(scalar(@$arows), 1, 'and one audit row');
is($arows->[0]{request_id}, $won[0]{request_id}, 'with the request id of the start that won') if @won && @$arows;
is(($won[0]{json}{data}{run}{id} // ''), $s->sql('SELECT id FROM pipeline_runs WHERE pipeline_id = ?', $q->{id})->[0]{id},
    'the winner\'s answer names that run') if @won;

# ---- a mixed burst: each answer its own, a refusal writes nothing ---------------------------------
# (an agent that polls REST and hears no publish: a start there is queued; the other starts name
# their agents, so that none goes to it as the least loaded)
my $poller = CxAgent->new(id => 't27-poller', ack => 'all', beat => 1, subscribe => 0)->start;
ok($poller->wait_online($s), 't27-poller online');
my ($good1, $good2, $queued, $lonely) = map { CxAgent::create_pipeline($s, "t27-mixed-$_") } 1 .. 4;
my $unknown = '00000000-0000-4000-8000-00000000dead';
my @m = start_burst(
    [$good1->{id}, "t27-m-$$-good1", { agent_id => 't27-agent-1' }],
    [$unknown, "t27-m-$$-unknown"],
    [$p[0]{id}, "t27-m-$$-running"],
    [$good2->{id}, "t27-m-$$-good2", { agent_id => 't27-agent-2' }],
    ['not-a-pipeline', "t27-m-$$-notuuid"],
    [$good1->{id}, "t27-m-$$-bogus", { bogus => 1 }],
    [$lonely->{id}, "t27-m-$$-nobody", { agent_id => 't27-nobody' }],
    [$queued->{id}, "t27-m-$$-queued", { agent_id => 't27-poller' }],
);
is(join(',', map { $_->{status} } @m), '200,404,409,200,404,400,409,202', 'the mixed burst: each its own status')
    or diag explain \@m;
is(join(',', map { $_->{json}{code} // '' } @m[1, 2, 4, 5, 6]), 'NOT_FOUND,INVALID_STATE,NOT_FOUND,VALIDATION_ERROR,NO_AGENT_AVAILABLE',
    'and its own code');
is($m[0]{json}{data}{run}{pipeline_id}, $good1->{id}, 'a start: its pipeline');
is($m[3]{json}{data}{run}{agent_id}, 't27-agent-2', 'a start with agent_id: on that agent');
like($m[2]{json}{error} // '', qr/already running \(run \S+ is (pending|running)\)/, 'a running pipeline: "already running (run … is …)"');
ok(exists $m[5]{json}{details}{bogus}, 'the unknown body field is named');
is($m[6]{json}{error}, 'agent t27-nobody is not registered', 'an unregistered agent: named');
is($m[7]{json}{data}{command}{status}, 'queued', 'a start on an agent nobody hears: 202 with its command queued');
like($m[7]{json}{message} // '', qr/queued/, 'saying why');
is(join(',', map { $_->{request_id} // '' } @m), join(',', map { "t27-m-$$-$_" } qw(good1 unknown running good2 notuuid bogus nobody queued)),
    'each answer carries its own request id');
is(scalar(@{ audit_of("t27-m-$$-$_") }), 0, "the refused start ($_) wrote no audit row") for qw(unknown running notuuid bogus nobody);
is(scalar(@{ audit_of("t27-m-$$-$_") }), 1, "the start $_ wrote its audit row") for qw(good1 good2 queued);
is($s->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE pipeline_id = ?', $p[0]{id})->[0]{n}, 1, 'the running pipeline: still one run');
is($s->sql('SELECT COUNT(*) AS n FROM pipeline_runs WHERE pipeline_id = ?', $lonely->{id})->[0]{n}, 0,
    'the pipeline asked of an unregistered agent: no run');
is($s->sql('SELECT agent_id FROM pipeline_runs WHERE pipeline_id = ?', $queued->{id})->[0]{agent_id}, 't27-poller',
    'the queued start: a run on the poller');

# ---- a start alone: a batch of one ----------------------------------------------------------------
my $lone = CxAgent::create_pipeline($s, 't27-lone');
my ($b2, $n2) = counters();
my $r = $s->post("$P/$lone->{id}/start", { agent_id => 't27-agent-3' }, token => $oper);
is($r->{status}, 200, 'a start alone: 200');
my ($b3, $n3) = counters();
is(join(',', $b3 - $b2, $n3 - $n2), '1,1', 'a batch of one');
like($s->get('/metrics')->{content}, qr/^# HELP conduix_api_start_batches_total \S/m, 'the batches metric has its help text');

is($s->stop, 0, 'server stops cleanly');
done_testing;
