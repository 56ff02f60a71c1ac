/*
 * civil.h -- proleptic Gregorian calendar arithmetic on days since 1970-01-01, shared by the time-zone
 * rules (tz.c) and the cron engine (cron.c). Pure integer arithmetic (Howard Hinnant's "chrono-compatible
 * low-level date algorithms"), exact for every year an int64 day count can hold, independent of the C
 * library, TZ and the locale.
 */
#ifndef CX_CRON_CIVIL_H
#define CX_CRON_CIVIL_H

#include <stdint.h>

#define CIVIL_DAY 86400

/* civil_div -- floor division (C's "/" truncates toward zero). */
static inline int64_t civil_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static inline int civil_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* civil_mdays -- days in month m (1-12) of year y. */
static inline int civil_mdays(int64_t y, int m)
{
    static const unsigned char n[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && civil_leap(y) ? 29 : n[m - 1];
}

/* civil_days -- days since 1970-01-01 of y-m-d (m 1-12, d 1-31). */
static inline int64_t civil_days(int64_t y, int m, int d)
{
    int64_t yy = m <= 2 ? y - 1 : y;
    int64_t era = civil_div(yy, 400);
    int64_t yoe = yy - era * 400;                         /* 0-399 */
    int64_t doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1; /* 0-365, from March 1st */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;  /* 0-146096 */
    return era * 146097 + doe - 719468;
}

/* civil_date -- y-m-d of a day count (the inverse of civil_days). */
static inline void civil_date(int64_t days, int64_t *y, int *m, int *d)
{
    int64_t z = days + 719468;
    int64_t era = civil_div(z, 146097);
    int64_t doe = z - era * 146097;                                      /* 0-146096 */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* 0-399 */
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* 0-365 */
    int64_t mp = (5 * doy + 2) / 153;                                    /* 0-11, from March */
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* civil_wday -- day of the week of a day count, 0 = Sunday (1970-01-01 was a Thursday). */
static inline int civil_wday(int64_t days)
{
    return (int)(days - civil_div(days + 4, 7) * 7 + 4);
}

#endif
