# 50-schedules-api.t -- the schedules resource through the real binary: the seed's four examples are
# accepted with the right upcoming fire times in the seed's zone (Asia/Seoul); every bad field is a 400
# that names it and says why (the cron engine's messages, unknown zones, unknown fields, a pipeline that
# does not exist) and writes nothing; roles; listing with ?pipeline_id= and ?enabled=; update recomputes
# next_run_at only when the timing changes; enable/disable; delete; audit rows; a pipeline's delete takes
# its schedules. The scheduler is off here (scheduler.enabled: false): nothing fires behind the checks.
use v5.36;
use Test::More;
use CxTest;
use CxAgent;
use POSIX qw(strftime);
use Time::Local qw(timegm);

my $s = CxTest->new(config => { 'scheduler.timezone' => 'Asia/Seoul', 'scheduler.enabled' => 'false' });
$s->start;
my $S = '/api/v1/schedules';
my $oper = $s->token(role => 'operator', sub => 't50-oper', email => 'oper@example.com');
my $viewer = $s->token(role => 'viewer', sub => 't50-viewer');
my $TIME = qr/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;
my $UUID = qr/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
my $r;

my $p = CxAgent::create_pipeline($s, 't50-pipe');
my $p2 = CxAgent::create_pipeline($s, 't50-pipe-2');

sub post_s($body, $tok = $oper) { $s->post($S, $body, token => $tok) }
sub count_schedules() { $s->sql('SELECT COUNT(*) AS n FROM schedules')->[0]{n} }
sub rfc($t) { strftime('%Y-%m-%dT%H:%M:%SZ', gmtime $t) }
sub epoch($iso) { my @f = $iso =~ /^(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+)Z$/ or return undef; timegm($f[5], $f[4], $f[3], $f[2], $f[1] - 1, $f[0]) }

# expected -- the next N fire times after $after of a plain 5-field expression (numbers and * only) in a
# zone of fixed offset $off seconds (Seoul has had no DST since 1988), found minute by minute.
sub expected($expr, $off, $after, $n) {
    my @f = split ' ', $expr;
    my $m = sub ($field, $v) { $field eq '*' || $field == $v };
    my @out;
    my $t = $after - $after % 60 + 60;
    while (@out < $n) {
        my @g = gmtime($t + $off);    # sec min hour mday mon year wday
        my ($dom_star, $dow_star) = ($f[2] eq '*', $f[4] eq '*');
        my $day = $dom_star || $dow_star ? $m->($f[2], $g[3]) && $m->($f[4], $g[6])
            : $m->($f[2], $g[3]) || $m->($f[4], $g[6]);
        push @out, rfc($t) if $m->($f[0], $g[1]) && $m->($f[1], $g[2]) && $day && $m->($f[3], $g[4] + 1);
        $t += 60;
    }
    return \@out;
}

# ---- the seed's four examples ----
my %made;
for my $expr ('0 * * * *', '0 0 * * *', '0 0 * * 0', '0 0 1 * *') {
    my $before = time;
    $r = post_s({ pipeline_id => $p->{id}, cron_expression => $expr });
    is($r->{status}, 201, "'$expr' is accepted") or diag $r->{content};
    my $d = $r->{json}{data};
    like($d->{id}, $UUID, "'$expr': id");
    is($r->{headers}{location}, "/api/v1/schedules/$d->{id}", "'$expr': Location");
    is($d->{timezone}, 'Asia/Seoul', "'$expr': the zone is scheduler.timezone");
    is($d->{enabled}, JSON::PP::true, "'$expr': enabled by default");
    is($d->{overlap_policy}, 'skip', "'$expr': overlap_policy skip by default");
    is($d->{cron_expression}, $expr, "'$expr': the expression as given");
    is_deeply([@{$d}{qw(fires skipped missed failures)}], [0, 0, 0, 0], "'$expr': counters at 0");
    ok(!defined $d->{last_run_id} && !defined $d->{last_run_status} && !defined $d->{last_run_at}, "'$expr': no run yet");
    is(scalar @{ $d->{upcoming} }, 5, "'$expr': five upcoming fire times");
    my $want = expected($expr, 9 * 3600, $before, 5);
    my $want2 = expected($expr, 9 * 3600, time, 5);    # the minute may have turned meanwhile
    ok(eq_array($d->{upcoming}, $want) || eq_array($d->{upcoming}, $want2), "'$expr': upcoming in Seoul time")
        or diag explain { got => $d->{upcoming}, want => $want };
    is($d->{next_run_at}, $d->{upcoming}[0], "'$expr': next_run_at is the first upcoming");
    $made{$expr} = $d;
}
# In UTC: hourly on the hour; Seoul's midnight is 15:00 UTC; Sunday's is Saturday 15:00 UTC.
like($made{'0 0 * * *'}{upcoming}[0], qr/T15:00:00Z$/, "midnight in Seoul is 15:00 UTC");
is((gmtime(epoch($made{'0 0 * * 0'}{upcoming}[0])))[6], 6, "Sunday's midnight in Seoul is a Saturday in UTC");
like($made{'0 0 1 * *'}{upcoming}[0], qr/T15:00:00Z$/, "the 1st's midnight in Seoul is 15:00 UTC the day before");
my $one = $made{'0 * * * *'};

$r = $s->get("$S/$one->{id}", token => $viewer);
is($r->{status}, 200, 'GET /schedules/:id by a viewer');
is_deeply([sort keys %{ $r->{json}{data} }],
    [sort qw(id pipeline_id cron_expression timezone enabled overlap_policy last_run_at next_run_at last_run_id
        last_run_status fires skipped missed failures created_by updated_by created_at updated_at upcoming)],
    'the Schedule fields and upcoming');
is($r->{json}{data}{created_by}, 'oper@example.com', 'created_by');
like($r->{json}{data}{created_at}, $TIME, 'created_at RFC 3339');
is(scalar @{ $r->{json}{data}{upcoming} }, 5, 'upcoming on GET');

# ---- other expressions and zones ----
$r = post_s({ pipeline_id => $p->{id}, cron_expression => '@every 90s', timezone => 'America/New_York' });
is($r->{status}, 201, '@every 90s');
{
    my @u = map { epoch($_) } @{ $r->{json}{data}{upcoming} };
    is_deeply([map { $u[$_] - $u[$_ - 1] } 1 .. 4], [90, 90, 90, 90], '@every 90s: 90 s apart');
    is($r->{json}{data}{timezone}, 'America/New_York', 'the zone given');
}
$r = post_s({ pipeline_id => $p->{id}, cron_expression => 'CRON_TZ=Europe/London 30 8 * * MON-FRI', enabled => JSON::PP::false,
    overlap_policy => 'replace' });
is($r->{status}, 201, 'a CRON_TZ= prefix, disabled, replace');
is($r->{json}{data}{enabled}, JSON::PP::false, 'created disabled');
ok(!defined $r->{json}{data}{next_run_at}, 'a disabled schedule has no next_run_at');
is_deeply($r->{json}{data}{upcoming}, [], 'nor upcoming fire times');
my $disabled = $r->{json}{data};

# ---- bad input: every field named, nothing written ----
my $n0 = count_schedules();
my $audit0 = $s->sql("SELECT COUNT(*) AS n FROM audit_log WHERE target_type = 'schedule'")->[0]{n};
my @bad = (
    [{}, { pipeline_id => qr/required/, cron_expression => qr/required/ }, 'an empty body'],
    [{ pipeline_id => $p->{id}, cron_expression => '61 * * * *' }, { cron_expression => qr/^minute: 61 is out of range 0-59$/ }, 'minute 61'],
    [{ pipeline_id => $p->{id}, cron_expression => '* * * *' }, { cron_expression => qr/^expected 5 fields, got 4$/ }, 'four fields'],
    [{ pipeline_id => $p->{id}, cron_expression => '0 0 * * SUNDAY' }, { cron_expression => qr/^day of week: unknown name "SUNDAY"$/ }, 'SUNDAY'],
    [{ pipeline_id => $p->{id}, cron_expression => '@every 500ms' }, { cron_expression => qr/^\@every: duration must be at least 1s$/ }, '@every 500ms'],
    [{ pipeline_id => $p->{id}, cron_expression => '0 0 30 2 *' }, { cron_expression => qr/can never fire: day of month 30 does not occur in February/ }, 'February 30th'],
    [{ pipeline_id => $p->{id}, cron_expression => 'CRON_TZ=Mars/Olympus 0 9 * * *' }, { cron_expression => qr/unknown time zone "Mars\/Olympus"/ }, 'an unknown CRON_TZ zone'],
    [{ pipeline_id => $p->{id}, cron_expression => '0 9 * * *', timezone => 'Mars/Olympus' }, { timezone => qr/unknown time zone "Mars\/Olympus"/ }, 'an unknown timezone'],
    [{ pipeline_id => $p->{id}, cron_expression => '0 9 * * *', timezone => 'localtime' }, { timezone => qr/not the server's own/ }, 'localtime'],
    [{ pipeline_id => $p->{id}, cron_expression => '0 9 * * *', timezone => 5 }, { timezone => qr/must be a string/ }, 'a timezone that is a number'],
    [{ pipeline_id => $p->{id}, cron_expression => 7 }, { cron_expression => qr/must be a string/ }, 'an expression that is a number'],
    [{ pipeline_id => $p->{id}, cron_expression => 'x' x 300 }, { cron_expression => qr/at most 255 bytes/ }, 'a 300-byte expression'],
    [{ pipeline_id => $p->{id}, cron_expression => '0 9 * * *', overlap_policy => 'sometimes' }, { overlap_policy => qr/skip, allow, replace/ }, 'an unknown policy'],
    [{ pipeline_id => $p->{id}, cron_expression => '0 9 * * *', enabled => 'yes' }, { enabled => qr/true or false/ }, 'enabled "yes"'],
    [{ pipeline_id => $p->{id}, cron_expression => '0 9 * * *', owner => 'me' }, { owner => qr/unknown field/ }, 'an unknown field'],
    [{ pipeline_id => 'not-a-uuid', cron_expression => '0 9 * * *' }, { pipeline_id => qr/UUID/ }, 'a pipeline_id that is no UUID'],
    [{ pipeline_id => '00000000-0000-4000-8000-000000000000', cron_expression => '0 9 * * *' }, { pipeline_id => qr/no pipeline has this id/ }, 'a pipeline that does not exist'],
    [{ pipeline_id => 'x', cron_expression => '99 * * * *', timezone => 'Nowhere/Land', overlap_policy => 1, colour => 'red' },
        { pipeline_id => qr/./, cron_expression => qr/minute/, timezone => qr/unknown time zone/, overlap_policy => qr/./, colour => qr/unknown/ },
        'five bad fields at once'],
);
for my $b (@bad) {
    my ($body, $want, $what) = @$b;
    $r = post_s($body);
    is($r->{status}, 400, "$what: 400");
    is($r->{json}{code}, 'VALIDATION_ERROR', "$what: VALIDATION_ERROR");
    is_deeply([sort keys %{ $r->{json}{details} // {} }], [sort keys %$want], "$what: details name exactly the bad fields");
    for my $f (sort keys %$want) {
        like($r->{json}{details}{$f} // '', $want->{$f}, "$what: $f says why");
        like($r->{json}{error}, qr/\Q$f\E/, "$what: the message names $f");
    }
}
$r = $s->post($S, '[1,2]', token => $oper);
is($r->{status}, 400, 'a body that is not an object: 400');
$r = $s->post($S, '{"pipeline_id":', token => $oper);
is($r->{status}, 400, 'broken JSON: 400');
is($r->{json}{code}, 'INVALID_JSON', 'INVALID_JSON');
is(count_schedules(), $n0, 'no refused create wrote a schedule');
is($s->sql("SELECT COUNT(*) AS n FROM audit_log WHERE target_type = 'schedule'")->[0]{n}, $audit0, 'nor an audit row');

# ---- roles ----
is(post_s({ pipeline_id => $p->{id}, cron_expression => '0 9 * * *' }, $viewer)->{status}, 403, 'a viewer may not create');
is($s->post($S, { pipeline_id => $p->{id}, cron_expression => '0 9 * * *' })->{status}, 401, 'no token: 401');
is($s->get($S)->{status}, 401, 'no token, no list');
is($s->put("$S/$one->{id}", { enabled => JSON::PP::false }, token => $viewer)->{status}, 403, 'a viewer may not update');
is($s->delete("$S/$one->{id}", token => $viewer)->{status}, 403, 'a viewer may not delete');
is($s->post("$S/$one->{id}/disable", undef, token => $viewer)->{status}, 403, 'a viewer may not disable');
is($s->post("$S/$one->{id}/trigger", undef, token => $viewer)->{status}, 403, 'a viewer may not trigger');

# ---- listing ----
$r = post_s({ pipeline_id => $p2->{id}, cron_expression => '15 3 * * *' });
is($r->{status}, 201, 'a schedule of the second pipeline');
my $other = $r->{json}{data};
my $total = count_schedules();
$r = $s->get("$S?page_size=2", token => $viewer);
is($r->{status}, 200, 'list');
is($r->{json}{data}{total}, $total, 'total');
is(scalar @{ $r->{json}{data}{items} }, 2, 'page_size 2');
is($r->{json}{data}{total_pages}, int(($total + 1) / 2), 'total_pages');
ok(!exists $r->{json}{data}{items}[0]{upcoming}, 'list items carry no upcoming');
my %seen;
for my $page (1 .. $r->{json}{data}{total_pages}) {
    $seen{ $_->{id} }++ for @{ $s->get("$S?page_size=2&page=$page", token => $viewer)->{json}{data}{items} };
}
is(scalar(keys %seen), $total, 'the pages hold every schedule once');
$r = $s->get("$S?pipeline_id=$p2->{id}", token => $viewer);
is_deeply([map { $_->{id} } @{ $r->{json}{data}{items} }], [$other->{id}], '?pipeline_id= filters');
$r = $s->get("$S?enabled=false", token => $viewer);
is_deeply([map { $_->{id} } @{ $r->{json}{data}{items} }], [$disabled->{id}], '?enabled=false');
$r = $s->get("$S?enabled=true&pipeline_id=$p2->{id}", token => $viewer);
is($r->{json}{data}{total}, 1, '?enabled=true&pipeline_id=');
for my $q ('enabled=maybe', 'pipeline_id=nope', 'page=0', 'page_size=500') {
    $r = $s->get("$S?$q", token => $viewer);
    is($r->{status}, 400, "?$q: 400");
    my ($field) = $q =~ /^(\w+)=/;
    ok(exists $r->{json}{details}{$field}, "?$q: details.$field");
}
is($s->get("$S?pipeline_id=00000000-0000-4000-8000-000000000000", token => $viewer)->{json}{data}{total}, 0,
    'a pipeline without schedules: an empty page');

# ---- update ----
my $id = $one->{id};
$r = $s->put("$S/$id", { overlap_policy => 'replace' }, token => $oper);
is($r->{status}, 200, 'PUT overlap_policy');
is($r->{json}{data}{overlap_policy}, 'replace', 'policy changed');
is($r->{json}{data}{next_run_at}, $one->{next_run_at}, 'next_run_at kept: the timing did not change');
is($r->{json}{data}{updated_by}, 'oper@example.com', 'updated_by');
$r = $s->put("$S/$id", { cron_expression => '*/5 * * * *' }, token => $oper);
is($r->{status}, 200, 'PUT cron_expression');
{
    my $next = epoch($r->{json}{data}{next_run_at});
    is($next % 300, 0, 'next_run_at recomputed: on a 5-minute boundary');
    cmp_ok($next - time, '<=', 301, 'next_run_at recomputed: within 5 minutes');
    is(scalar @{ $r->{json}{data}{upcoming} }, 5, 'upcoming after the update');
}
$r = $s->put("$S/$id", { timezone => 'Europe/London' }, token => $oper);
is($r->{json}{data}{timezone}, 'Europe/London', 'PUT timezone');
$r = $s->put("$S/$id", { timezone => undef }, token => $oper);
is($r->{json}{data}{timezone}, 'Asia/Seoul', 'timezone null: back to scheduler.timezone');
my $before = $s->get("$S/$id", token => $viewer)->{json}{data};
for my $b ([{}, 'body'], [{ cron_expression => '0 0 31 4 *' }, 'cron_expression'], [{ timezone => 'UTC+3' }, 'timezone'],
    [{ pipeline_id => '00000000-0000-4000-8000-000000000000' }, 'pipeline_id'], [{ enabled => 1 }, 'enabled'],
    [{ id => $id }, 'id']) {
    $r = $s->put("$S/$id", $b->[0], token => $oper);
    is($r->{status}, 400, "PUT with a bad $b->[1]: 400");
    ok(exists $r->{json}{details}{ $b->[1] }, "PUT: details.$b->[1]");
}
is_deeply($s->get("$S/$id", token => $viewer)->{json}{data}, $before, 'refused updates changed nothing');
is($s->put("$S/00000000-0000-4000-8000-000000000000", { enabled => JSON::PP::false }, token => $oper)->{status}, 404,
    'PUT of an unknown schedule: 404');
is($s->put("$S/nope", { enabled => JSON::PP::false }, token => $oper)->{status}, 404, 'PUT of a malformed id: 404');
$r = $s->put("$S/$id", { pipeline_id => $p2->{id} }, token => $oper);
is($r->{json}{data}{pipeline_id}, $p2->{id}, 'a schedule moves to another pipeline');

# ---- enable / disable ----
$r = $s->post("$S/$id/disable", undef, token => $oper);
is($r->{status}, 200, 'disable');
is($r->{json}{data}{enabled}, JSON::PP::false, 'disabled');
ok(!defined $r->{json}{data}{next_run_at}, 'no next_run_at while disabled');
is_deeply($r->{json}{data}{upcoming}, [], 'no upcoming while disabled');
is($s->sql('SELECT next_run_at FROM schedules WHERE id = ?', $id)->[0]{next_run_at}, undef, 'NULL in MySQL');
$r = $s->post("$S/$id/disable", undef, token => $oper);
is($r->{status}, 200, 'disable again: 200');
$r = $s->post("$S/$id/enable", { now => 1 }, token => $oper);
is($r->{status}, 400, 'enable takes no fields');
$r = $s->post("$S/$id/enable", undef, token => $oper);
is($r->{status}, 200, 'enable');
is($r->{json}{data}{enabled}, JSON::PP::true, 'enabled');
like($r->{json}{data}{next_run_at} // '', $TIME, 'next_run_at again');
is($s->post("$S/00000000-0000-4000-8000-000000000000/enable", undef, token => $oper)->{status}, 404, 'enable unknown: 404');

# ---- audit ----
my %actions = map { $_->{action} => $_ } @{ $s->sql(
    "SELECT action, actor, before_json, after_json FROM audit_log WHERE target_type = 'schedule' AND target_id = ?", $id) };
ok($actions{$_}, "audit row $_") for qw(schedule_create schedule_update schedule_disable schedule_enable);
is($actions{schedule_create}{actor}, 'oper@example.com', 'the audit row names the actor');
is($s->sql("SELECT COUNT(*) AS n FROM audit_log WHERE target_id = ? AND action = 'schedule_disable'", $id)->[0]{n}, 1,
    'disabling a disabled schedule wrote no second row');
like($actions{schedule_enable}{after_json}, qr/"enabled":true/, 'after holds the schedule as it became');

# ---- delete ----
$r = $s->delete("$S/$id", token => $oper);
is($r->{status}, 200, 'delete');
is_deeply($r->{json}{data}, { id => $id, deleted => JSON::PP::true }, 'delete answers the id');
is($s->get("$S/$id", token => $viewer)->{status}, 404, 'gone');
is($s->delete("$S/$id", token => $oper)->{status}, 404, 'a second delete: 404');
is($s->sql("SELECT COUNT(*) AS n FROM audit_log WHERE target_id = ? AND action = 'schedule_delete'", $id)->[0]{n}, 1, 'audited');

# ---- a pipeline's delete takes its schedules ----
my $left = $s->sql('SELECT COUNT(*) AS n FROM schedules WHERE pipeline_id = ?', $p->{id})->[0]{n};
cmp_ok($left, '>', 0, 'the first pipeline has schedules');
is($s->delete("/api/v1/pipelines/$p->{id}", token => $oper)->{status}, 200, 'delete the pipeline');
is($s->sql('SELECT COUNT(*) AS n FROM schedules WHERE pipeline_id = ?', $p->{id})->[0]{n}, 0, 'its schedules are gone');
is($s->get("$S?pipeline_id=$p->{id}", token => $viewer)->{json}{data}{total}, 0, 'and not listed');

is($s->stop, 0, 'stop exits 0');
done_testing;
