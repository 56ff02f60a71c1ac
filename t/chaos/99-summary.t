# chaos summary -- the figures of every scenario of this run (t/chaos/0*.t wrote them to
# $CX_BUILDDIR/t/chaos/figures) as one table, in t/chaos/summary.md of the build tree (the table kept
# in docs/faults.md is a copy of it). Checks that every scenario reported its figures.
use v5.36;
use Test::More;
use CxTest;
use CxChaos;
use JSON::PP;

my @files = sort glob("$CxChaos::FIGURES/*.json");
my @scen = map { open(my $fh, '<', $_) or die "$_: $!"; local $/; decode_json(<$fh>) } @files;
my %have = map { ($_->{scenario} =~ /^(\d+) / ? $1 : 0) => 1 } @scen;
is_deeply([grep { !$have{$_} } 1 .. 7], [], 'every one of the seven scenarios reported its figures');

my $md = "| scenario | figure | measured | bound | |\n|---|---|---|---|---|\n";
my ($n, $bad) = (0, 0);
for my $sc (sort { ($a->{scenario} =~ /^(\d+)/)[0] <=> ($b->{scenario} =~ /^(\d+)/)[0] } @scen) {
    my $first = 1;
    for my $row (@{ $sc->{rows} }) {
        $n++;
        $bad++ unless $row->{ok};
        $md .= sprintf("| %s | %s | %s | %s | %s |\n", $first ? $sc->{scenario} : '', $row->{figure}, $row->{value}, $row->{bound},
            $row->{ok} ? 'ok' : '**FAIL**');
        $first = 0;
    }
}
$md .= "\n$n figures, $bad outside their bounds.\n";
open(my $out, '>', "$CxTest::BUILDDIR/t/chaos/summary.md") or die $!;
print $out $md;
close $out;
diag("\n$md");
ok($n > 0, "the summary table: $n figures, $bad outside their bounds ($CxTest::BUILDDIR/t/chaos/summary.md)");
done_testing;
