#!/usr/bin/perl
# bench/command-path.pl -- the driver of bench/command-path.sh: POST /api/v1/pipelines/:id/start at a
# fixed rate, each seeded pipeline once, from CLIENTS processes (each with its own keep-alive
# connection), and one line per request: pipeline id, run id, status, when it was sent and answered
# (Unix microseconds). Then, with --join SIMLOG, the latency from each send to the moment the simulated
# agent received its start_pipeline (the simulator's ts_us), and the percentiles.
#
# usage: command-path.pl --url URL --token T --ids FILE --rate N --duration S --clients C --out TSV
#        command-path.pl --join SIMLOG --out TSV
use v5.36;
use Getopt::Long;
use HTTP::Tiny;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);

my %o = (rate => 200, duration => 10, clients => 4);
GetOptions(\%o, 'url=s', 'token=s', 'ids=s', 'rate=f', 'duration=f', 'clients=i', 'out=s', 'join=s') or exit 2;
die "--out is required\n" unless $o{out};

sub us() { int(time * 1e6) }

sub pct($p, @v) { return @v ? $v[ int($p / 100 * $#v + 0.5) ] : 0 }

if ($o{join}) {
    my %sent;
    open(my $in, '<', $o{out}) or die "$o{out}: $!";
    while (<$in>) {
        chomp;
        my ($pid, $run, $st, $t0, $t1) = split /\t/;
        $sent{$run} = [$t0, $t1, $st] if $run;
    }
    my (%got, $repeats);
    open(my $log, '<', $o{join}) or die "$o{join}: $!";
    while (<$log>) {
        my $e = eval { decode_json($_) } // next;
        next unless ($e->{event} // '') eq 'command' && ($e->{type} // '') eq 'start_pipeline';
        my $run = $e->{run_id} // next;
        if (exists $got{$run}) { $repeats++; next }
        $got{$run} = $e->{ts_us} // ($e->{ts} // 0) * 1000;
    }
    my (@answer, @command, $missing);
    for my $run (keys %sent) {
        my ($t0, $t1, $st) = @{ $sent{$run} };
        push @answer, ($t1 - $t0) / 1000;
        if (defined $got{$run}) { push @command, ($got{$run} - $t0) / 1000 } else { $missing++ }
    }
    @answer = sort { $a <=> $b } @answer;
    @command = sort { $a <=> $b } @command;
    printf "starts accepted %d; commands received %d, missing %d, received twice %d\n", scalar @answer, scalar @command,
        $missing // 0, $repeats // 0;
    printf "answer   (ms): p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", map { pct($_, @answer) } 50, 90, 99, 100;
    printf "command  (ms): p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n", map { pct($_, @command) } 50, 90, 99, 100;
    printf "RESULT starts=%d received=%d missing=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", scalar @answer,
        scalar @command, $missing // 0, map { pct($_, @command) } 50, 90, 99, 100;
    exit 0;
}

open(my $f, '<', $o{ids}) or die "$o{ids}: $!";
chomp(my @ids = <$f>);
my $n = int($o{rate} * $o{duration});
die "need $n seeded pipelines, have " . @ids . "\n" if @ids < $n;
my $t0 = time + 0.5;    # every client starts on the same schedule
my @kids;
for my $c (0 .. $o{clients} - 1) {
    my $pid = fork // die "fork: $!";
    if (!$pid) {
        my $ua = HTTP::Tiny->new(keep_alive => 1, timeout => 10);
        # no body: HTTP::Tiny writes a body apart from the head, and without TCP_NODELAY the second
        # small write waits for the server's delayed ACK (40 ms), which would be measured as ours
        my %h = (headers => { Authorization => "Bearer $o{token}" });
        open(my $out, '>', "$o{out}.$c") or die "$o{out}.$c: $!";
        for (my $k = $c; $k < $n; $k += $o{clients}) {
            my $at = $t0 + $k / $o{rate};
            my $wait = $at - time;
            sleep $wait if $wait > 0;
            my $s = us();
            my $r = $ua->request('POST', "$o{url}/api/v1/pipelines/$ids[$k]/start", \%h);
            my $e = us();
            my $run = eval { decode_json($r->{content})->{data}{run}{id} } // '';
            print $out join("\t", $ids[$k], $run, $r->{status}, $s, $e), "\n";
        }
        close $out;
        POSIX::_exit(0);
    }
    push @kids, $pid;
}
waitpid($_, 0) for @kids;
open(my $all, '>', $o{out}) or die "$o{out}: $!";
for my $c (0 .. $o{clients} - 1) {
    open(my $part, '<', "$o{out}.$c") or next;
    print $all $_ while <$part>;
    close $part;
    unlink "$o{out}.$c";
}
close $all;
my %by;
open(my $in, '<', $o{out}) or die;
while (<$in>) { my @x = split /\t/; $by{ $x[2] }++ }
printf "sent %d starts at %.0f/s from %d clients: %s\n", $n, $o{rate}, $o{clients},
    join(', ', map { "$_: $by{$_}" } sort keys %by);
