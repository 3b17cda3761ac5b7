/*
 * lockbench's clock skew library, loaded into a server with LD_PRELOAD.
 *
 * It scales and shifts the wall clock the server sees:
 *     fake = base_fake + (real - base_real) * rate
 * with the parameters read, on every call, from a small control file that
 * lockbench rewrites while the server runs (path in LOCKBENCH_CLOCK_FILE).
 * CLOCK_MONOTONIC follows its own rate (no jumps: a monotonic clock must not
 * go back), 1 unless lockbench asks.
 *
 * Why not libfaketime: Debian's libfaketime 0.9.10 kills Debian's
 * redis-server at start, because jemalloc asks for the time before
 * libfaketime is initialised. So this library never mallocs, reads the real
 * clock through the raw syscall (no vDSO pointer to look up), maps the
 * control file lazily with raw syscalls, and falls back to the real clock
 * whenever anything is missing.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Shared with src/fault/clock.rs: 8-byte fields at these offsets. */
struct control {
    uint64_t seq;        /* seqlock: odd while lockbench writes */
    uint64_t magic;      /* LB_MAGIC once initialised */
    int64_t base_real;   /* CLOCK_REALTIME ns at the last change */
    int64_t base_fake;   /* what the server saw then */
    double rate;         /* fake ns per real ns */
    int64_t mono_base_real;
    int64_t mono_base_fake;
    double mono_rate;
};

#define LB_MAGIC 0x314b434f4c43424cULL /* "LBCLOCK1" little endian */

extern char **environ;

/* 0 not yet, 1 someone is mapping, 2 mapped, 3 never (real time). */
static int state;
static struct control *ctl;

static long raw_clock(clockid_t id, struct timespec *ts)
{
    return syscall(SYS_clock_gettime, id, ts);
}

static const char *find_env(const char *name)
{
    size_t n = strlen(name);
    char **e = environ;
    if (!e)
        return 0;
    for (; *e; e++)
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    return 0;
}

static struct control *control(void)
{
    int s = __atomic_load_n(&state, __ATOMIC_ACQUIRE);
    if (s == 2)
        return ctl;
    if (s != 0)
        return 0;
    /* Very early (before environ is set) stay real and try again later. */
    if (!environ)
        return 0;
    int expected = 0;
    if (!__atomic_compare_exchange_n(&state, &expected, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return 0;
    const char *path = find_env("LOCKBENCH_CLOCK_FILE");
    int next = 3;
    if (path && *path) {
        long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            long p = syscall(SYS_mmap, 0, 4096, PROT_READ, MAP_SHARED, fd, 0);
            syscall(SYS_close, fd);
            /* mmap returns -errno in [-4095, -1] on failure. */
            if (p < 0 && p > -4096)
                p = 0;
            if (p) {
                ctl = (struct control *)p;
                next = 2;
            }
        }
    }
    __atomic_store_n(&state, next, __ATOMIC_RELEASE);
    return next == 2 ? ctl : 0;
}

static int64_t to_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000LL + ts->tv_nsec;
}

static void from_ns(int64_t ns, struct timespec *ts)
{
    int64_t sec = ns / 1000000000LL, rem = ns % 1000000000LL;
    if (rem < 0) {
        rem += 1000000000LL;
        sec -= 1;
    }
    ts->tv_sec = sec;
    ts->tv_nsec = rem;
}

/* Applies the control's parameters to `real` (ns); `mono` picks which set. */
static int64_t fake_ns(int64_t real, int mono)
{
    struct control *c = control();
    if (!c)
        return real;
    /* Bounded: a writer that died mid-update leaves real time, not a hang. */
    for (int i = 0; i < 1000; i++) {
        uint64_t s1 = __atomic_load_n(&c->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1)
            continue;
        uint64_t magic = __atomic_load_n(&c->magic, __ATOMIC_RELAXED);
        int64_t br, bf;
        uint64_t rbits;
        if (mono) {
            br = __atomic_load_n(&c->mono_base_real, __ATOMIC_RELAXED);
            bf = __atomic_load_n(&c->mono_base_fake, __ATOMIC_RELAXED);
            rbits = __atomic_load_n((uint64_t *)&c->mono_rate, __ATOMIC_RELAXED);
        } else {
            br = __atomic_load_n(&c->base_real, __ATOMIC_RELAXED);
            bf = __atomic_load_n(&c->base_fake, __ATOMIC_RELAXED);
            rbits = __atomic_load_n((uint64_t *)&c->rate, __ATOMIC_RELAXED);
        }
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&c->seq, __ATOMIC_RELAXED) != s1)
            continue;
        if (magic != LB_MAGIC)
            return real;
        double rate;
        memcpy(&rate, &rbits, sizeof rate);
        if (!(rate >= 0.0 && rate <= 1e6))
            return real;
        return bf + (int64_t)((double)(real - br) * rate);
    }
    return real;
}

static int is_realtime(clockid_t id)
{
    return id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE || id == CLOCK_TAI ||
           id == CLOCK_REALTIME_ALARM;
}

static int is_monotonic(clockid_t id)
{
    return id == CLOCK_MONOTONIC || id == CLOCK_MONOTONIC_COARSE || id == CLOCK_MONOTONIC_RAW ||
           id == CLOCK_BOOTTIME || id == CLOCK_BOOTTIME_ALARM;
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    long r = raw_clock(id, ts);
    if (r != 0)
        return (int)r; /* syscall() already set errno and returned -1 */
    if (is_realtime(id))
        from_ns(fake_ns(to_ns(ts), 0), ts);
    else if (is_monotonic(id))
        from_ns(fake_ns(to_ns(ts), 1), ts);
    return 0;
}

int gettimeofday(struct timeval *tv, void *tz)
{
    struct timespec ts;
    (void)tz;
    if (!tv)
        return 0;
    if (raw_clock(CLOCK_REALTIME, &ts) != 0)
        return -1;
    from_ns(fake_ns(to_ns(&ts), 0), &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
    return 0;
}

time_t time(time_t *out)
{
    struct timespec ts;
    if (raw_clock(CLOCK_REALTIME, &ts) != 0)
        return (time_t)-1;
    from_ns(fake_ns(to_ns(&ts), 0), &ts);
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
