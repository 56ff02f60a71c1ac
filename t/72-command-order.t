# 72-command-order.t -- the order an agent hears its commands in, under concurrency. The guarantee
# (docs/api.md, "Delivery"): the commands of one pipeline reach its agent in the order they were written
# (seq), first deliveries and redeliveries alike; once an agent has heard a command of a pipeline it never
# hears an older one of that pipeline again. Commands for different pipelines of one agent may overtake
# each other. Four clients drive start, pause, resume and stop cycles on twelve pipelines at once, on two
# agents that never acknowledge (so every command is redelivered every 300 ms until a newer one of its
# pipeline reaches the agent), with four workers and the dispatcher publishing side by side.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use JSON::PP;
use DBI;
use POSIX qw(_exit);
use Time::HiRes qw(time sleep);

my $s = CxAgent::server(workers => 4, 'commands.redeliver_interval' => '300ms');
my $P = '/api/v1/pipelines';
my $oper = $s->token(role => 'operator', sub => 't72-oper');

my @agents = map { CxAgent->new(id => "t72-agent-$_", ack => 'none', beat => 1)->start } 1, 2;
ok($_->wait_online($s), $_->id . ' online') for @agents;
my @pipes = map { CxAgent::create_pipeline($s, "order-$_") } 1 .. 12;

# cycle -- in a client process: start (on an agent), pause, resume, stop, each once the run shows the
# status the last command asked for (legacy agents: from their heartbeats). 0 or a reason.
sub cycle($p, $agent) {
    my %goal = (start => 'running', pause => 'paused', resume => 'running', stop => 'stopped');
    for my $op (qw(start pause resume stop)) {
        my $r = $s->post("$P/$p->{id}/$op", $op eq 'start' ? { agent_id => $agent } : undef, token => $oper);
        return "$op $p->{name}: $r->{status} $r->{content}" unless $r->{status} == 200 || $r->{status} == 202;
        my $deadline = time + 20 * $CxTest::SCALE;
        while ((CxAgent::run_status($s, $p->{id}) // '') ne $goal{$op}) {
            return "$op $p->{name}: not $goal{$op} in time" if time > $deadline;
            sleep 0.05;
        }
    }
    return 0;
}

my $t0 = time;
my @kids;
for my $c (0 .. 3) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $err = 0;
        for my $round (1, 2) {
            for my $k (0 .. 2) {
                my $i = $c * 3 + $k;
                $err ||= cycle($pipes[$i], $agents[$i % 2]->id);
            }
        }
        print STDERR "client $c: $err\n" if $err;
        _exit($err ? 1 : 0);
    }
    push @kids, $pid;
}
my $failed = 0;
for (@kids) { waitpid($_, 0); $failed++ if $? }
is($failed, 0, 'four clients drove two cycles each on three pipelines');
note(sprintf('clients done in %.1f s', time - $t0));
sleep 1;    # redeliveries still in flight

# every command's place in its pipeline's order
my %seq = map { ($_->{id} => $_->{seq}) } @{ $s->sql('SELECT id, seq FROM agent_commands') };
is(scalar(keys %seq), 12 * 2 * 4, 'every command written');
my ($deliveries, @wrong) = (0);
for my $ag (@agents) {
    my %last;    # pipeline -> [seq, command id] of the newest command heard
    for my $m ($ag->messages) {
        my ($id, $pid) = ($m->{msg}{id}, $m->{msg}{pipeline_id});
        my $q = $seq{$id} // next;
        $deliveries++;
        if ($last{$pid} && $q < $last{$pid}[0]) {
            push @wrong, sprintf('%s heard %s (seq %d) after %s (seq %d)', $ag->id, $m->{msg}{type}, $q, $last{$pid}[1],
                $last{$pid}[0]);
        }
        $last{$pid} = [$q, $m->{msg}{type}] if !$last{$pid} || $q >= $last{$pid}[0];
    }
}
cmp_ok($deliveries, '>', 96, "more deliveries than commands: redeliveries were in flight ($deliveries)");
is(scalar @wrong, 0, 'no agent heard an older command of a pipeline after a newer one') or diag join("\n", @wrong[0 .. 9]);
my @heard = map { my $a = $_; map { $_->{msg}{id} } $a->messages } @agents;
my %heard = map { ($_ => 1) } @heard;
my @stops = map { $_->{id} } @{ $s->sql(q{SELECT id FROM agent_commands WHERE type = 'stop_pipeline'}) };
is(scalar(grep { $heard{$_} } @stops), 24, 'every stop reached its agent');
is($s->sql(q{SELECT COUNT(*) AS n FROM agent_commands WHERE status IN ('queued', 'sent')})->[0]{n}, 0,
    'nothing is left outstanding: each run ended and cancelled what it had');
is_deeply([map { CxAgent::run_status($s, $_->{id}) } @pipes], [('stopped') x 12], 'every pipeline stopped');

# ---- the lock under which a pipeline's commands to an agent are claimed and published ---------------
# (cxcmd:<pipeline id>:<FNV-1a 64 of the agent id, hex>): while another session holds it, neither a
# worker nor the dispatcher publishes a command of that pipeline to that agent.
sub fnv1a64($str) {
    require Math::BigInt;
    my ($h, $mod) = (Math::BigInt->new('14695981039346656037'), Math::BigInt->new(2)**64);
    for my $c (unpack('C*', $str)) { $h = (($h ^ $c) * 1099511628211) % $mod }
    return substr(('0' x 16) . substr($h->as_hex, 2), -16);
}
my ($p, $agent) = ($pipes[0], $agents[0]);
my $r = $s->post("$P/$p->{id}/start", { agent_id => $agent->id }, token => $oper);
wait_ok { (CxAgent::run_status($s, $p->{id}) // '') eq 'running' } 15, 'running again';
my $other = DBI->connect("DBI:mysql:database=" . $s->db_name . ";host=127.0.0.1;port=$CxTest::MYSQL_PORT", 'conduix',
    'conduix', { RaiseError => 1, AutoCommit => 1 });
my $lock = "cxcmd:$p->{id}:" . fnv1a64($agent->id);
is(($other->selectrow_array('SELECT GET_LOCK(?, 0)', undef, $lock))[0], 1, "another session holds $lock");
$r = $s->post("$P/$p->{id}/pause", undef, token => $oper);
is($r->{status}, 202, 'pause while the lock is held elsewhere: 202, queued');
my $pause = $r->{json}{data}{command}{id};
sleep 1.5;
is(scalar($agent->commands_of($pause)), 0, 'not published by the worker nor by the dispatcher meanwhile');
$other->do('DO RELEASE_LOCK(?)', undef, $lock);
wait_ok { $agent->commands_of($pause) } 10, 'published once the lock is free';
$other->disconnect;

is($s->stop, 0, 'server stops cleanly');
done_testing;
