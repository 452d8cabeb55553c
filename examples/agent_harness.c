/*
 * agent_harness.c - drives libadudiffapi.so exactly the way the Azure Device Update agent does
 * (microsoft/delta download handler, see docs/C-API.md section 5):
 *
 *   dlopen("libadudiffapi.so", RTLD_LAZY)          by bare name: LD_LIBRARY_PATH, ld.so.cache, ...
 *   dlsym() the six required symbols              with the AGENT's function-pointer types
 *   session = adu_diff_apply_create_session()
 *   res = adu_diff_apply(session, source, delta, target)
 *   for i in 0 .. get_error_count()-1: log code, text, extended result code
 *   dlclose(lib)                                   <- BEFORE close_session, like the agent
 *   adu_diff_apply_close_session(session)          <- only safe because of -z nodelete
 *
 * Usage:
 *   agent_harness [options] <source> <delta> <target>
 *     --repeat N      run the whole sequence N times in one process (dlopen each time, like the
 *                     agent does for every related file / every deployment); default 1
 *     --library NAME  name (or path) given to dlopen; default "libadudiffapi.so"
 *     --null WHICH    pass NULL instead of the source|delta|target path (repeatable)
 *     --peaks         at the end, print the process's peak address space and peak resident set
 *                     (VmPeak and VmHWM of /proc/self/status) to stderr: "peaks: VmPeak <n> kB
 *                     VmHWM <n> kB" (scripts/bench-address-space.py)
 *
 * Output: one line per error, then exactly one final line "result: ok" or
 * "result: error <code>" (the last error code, as the agent keeps the last one), or
 * "result: failed <reason>" when the library cannot be loaded/used at all.
 * Exit status: 0 on success; after an apply error the low byte of the last error code, or 1 when
 * that byte is 0; 2 usage; 3 dlopen failed; 4 a symbol is missing; 5 create_session returned NULL;
 * 6 an ABI check failed.
 *
 * Written for this project; no code taken from Microsoft's repositories.
 */
#define _POSIX_C_SOURCE 200809L

#include <dlfcn.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The agent's declarations (docs/C-API.md 5.2): size_t count and index, int code. */
typedef void *(*create_session_fn)();
typedef void (*close_session_fn)(void *);
typedef int (*apply_fn)(void *, const char *, const char *, const char *);
typedef size_t (*get_error_count_fn)(void *);
typedef const char *(*get_error_text_fn)(void *, size_t);
typedef int (*get_error_code_fn)(void *, size_t);

/* MAKE_DELTA_PROCESSOR_EXTENDEDRESULTCODE: facility 9, component 0x0A, 20-bit code. */
#define DELTA_PROCESSOR_ERC(v) ((int32_t)(UINT32_C(0x90A00000) | ((uint32_t)(v) & UINT32_C(0xFFFFF))))

#define ERC_LOAD_LIB UINT32_C(0x90800005)
#define ERC_ENSURE_SYMBOLS UINT32_C(0x90800006)
#define ERC_CREATE_SESSION UINT32_C(0x90800007)

enum {
    EXIT_USAGE = 2,
    EXIT_DLOPEN = 3,
    EXIT_DLSYM = 4,
    EXIT_CREATE = 5,
    EXIT_ABI = 6
};

struct api {
    create_session_fn create_session;
    close_session_fn close_session;
    apply_fn apply;
    get_error_count_fn get_error_count;
    get_error_text_fn get_error_text;
    get_error_code_fn get_error_code;
};

/* Converts a data pointer returned by dlsym to a function pointer without a pedantic warning. */
static int resolve(void *lib, const char *name, void *slot, size_t slot_size)
{
    void *sym;
    dlerror();
    sym = dlsym(lib, name);
    if (sym == NULL) {
        const char *err = dlerror();
        fprintf(stderr, "dlsym(%s) failed: %s\n", name, err ? err : "symbol is NULL");
        return 0;
    }
    memcpy(slot, &sym, slot_size);
    return 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: agent_harness [--repeat N] [--library NAME] [--null source|delta|target]...\n"
            "                     [--peaks]\n"
            "                     <source> <delta> <target>\n");
}

struct outcome {
    int exit_status;
    int ok;
    int fatal; /* the library could not be loaded or used at all */
    uint32_t last_code; /* valid when !ok and exit_status is an apply error */
};

/* One complete agent-style apply. */
static struct outcome run_once(const char *library, const char *source, const char *delta,
                               const char *target, int iteration)
{
    struct outcome out = {0, 1, 0, 0};
    struct api api;
    void *lib;
    void *session;
    int res;
    size_t count;
    size_t i;
    int32_t erc;

    printf("== iteration %d: dlopen(\"%s\", RTLD_LAZY)\n", iteration, library);
    lib = dlopen(library, RTLD_LAZY);
    if (lib == NULL) {
        const char *err = dlerror();
        printf("dlopen failed: %s\n", err ? err : "?");
        printf("extended result code: 0x%08" PRIX32 "\n", ERC_LOAD_LIB);
        printf("result: failed dlopen\n");
        out.exit_status = EXIT_DLOPEN;
        out.ok = 0;
        out.fatal = 1;
        return out;
    }

    if (!resolve(lib, "adu_diff_apply", &api.apply, sizeof api.apply) ||
        !resolve(lib, "adu_diff_apply_close_session", &api.close_session, sizeof api.close_session) ||
        !resolve(lib, "adu_diff_apply_create_session", &api.create_session,
                 sizeof api.create_session) ||
        !resolve(lib, "adu_diff_apply_get_error_code", &api.get_error_code,
                 sizeof api.get_error_code) ||
        !resolve(lib, "adu_diff_apply_get_error_count", &api.get_error_count,
                 sizeof api.get_error_count) ||
        !resolve(lib, "adu_diff_apply_get_error_text", &api.get_error_text,
                 sizeof api.get_error_text)) {
        printf("extended result code: 0x%08" PRIX32 "\n", ERC_ENSURE_SYMBOLS);
        printf("result: failed dlsym\n");
        dlclose(lib);
        out.exit_status = EXIT_DLSYM;
        out.ok = 0;
        out.fatal = 1;
        return out;
    }

    session = api.create_session();
    if (session == NULL) {
        printf("extended result code: 0x%08" PRIX32 "\n", ERC_CREATE_SESSION);
        printf("result: failed create_session\n");
        dlclose(lib);
        out.exit_status = EXIT_CREATE;
        out.ok = 0;
        out.fatal = 1;
        return out;
    }

    res = api.apply(session, source, delta, target);
    printf("adu_diff_apply returned %d\n", res);
    if (res != 0) {
        out.ok = 0;
        /* The agent starts from the return value itself and lets every logged error override. */
        erc = DELTA_PROCESSOR_ERC(res);
        out.last_code = (uint32_t)res;

        count = api.get_error_count(session);
        printf("error count: %zu\n", count);
        /* The agent reads a size_t; the library declares uint32_t. Bits 32..63 must be zero.
         * (Only where size_t is wider than 32 bits: on armv7 the check cannot fail, and GCC's
         * -Wtype-limits rejects it.) */
#if SIZE_MAX > 0xFFFFFFFFu
        if ((uint64_t)count > UINT64_C(0xFFFFFFFF)) {
            printf("ABI check failed: error count has garbage in bits 32..63 (0x%016" PRIX64 ")\n",
                   (uint64_t)count);
            out.exit_status = EXIT_ABI;
        }
#endif
        for (i = 0; i < count && i < 64; i++) {
            int code = api.get_error_code(session, i);
            const char *text = api.get_error_text(session, i);
            erc = DELTA_PROCESSOR_ERC(code);
            out.last_code = (uint32_t)code;
            printf("error[%zu]: code=%d erc=0x%08" PRIX32 " (%" PRId32 ") text=%s\n", i, code,
                   (uint32_t)erc, erc, text ? text : "(null)");
            if (text == NULL) {
                printf("ABI check failed: error text %zu is NULL\n", i);
                out.exit_status = EXIT_ABI;
            }
        }
        if (count > 0 && sizeof(size_t) > 4) {
            /* An index with garbage in the upper half must act like its low 32 bits (the library
             * takes uint32_t); the agent never does this, but the ABI allows it. */
            size_t dirty = (size_t)((UINT64_C(0xDEADBEEF) << 32) | 0u);
            if (api.get_error_text(session, dirty) != api.get_error_text(session, 0) ||
                api.get_error_code(session, dirty) != api.get_error_code(session, 0)) {
                printf("ABI check failed: index with high bits set is not truncated to 32 bits\n");
                out.exit_status = EXIT_ABI;
            }
        }
        /* Out of range: NULL text and code 0. */
        if (api.get_error_text(session, count) != NULL || api.get_error_code(session, count) != 0) {
            printf("ABI check failed: out-of-range index gives a text or a code\n");
            out.exit_status = EXIT_ABI;
        }
        printf("extended result code: 0x%08" PRIX32 " (%" PRId32 ")\n", (uint32_t)erc, erc);
    } else {
        count = api.get_error_count(session);
        if (count != 0) {
            printf("ABI check failed: success but error count is %zu\n", count);
            out.exit_status = EXIT_ABI;
        }
        printf("extended result code: 0x00000000 (0)\n");
    }

    /* The agent's order: the SharedLib object goes out of scope first ... */
    if (dlclose(lib) != 0) {
        const char *err = dlerror();
        printf("dlclose failed: %s\n", err ? err : "?");
    }
    /* ... and only then is the session closed through the saved pointer (docs/C-API.md 5.3). */
    api.close_session(session);
    printf("session closed after dlclose\n");

    if (out.exit_status == EXIT_ABI) {
        printf("result: failed abi-check\n");
        return out;
    }
    if (out.ok) {
        printf("result: ok\n");
        out.exit_status = 0;
    } else {
        printf("result: error %" PRIu32 "\n", out.last_code);
        out.exit_status = (out.last_code & 0xFFu) != 0 ? (int)(out.last_code & 0xFFu) : 1;
    }
    return out;
}

/* Prints VmPeak and VmHWM of /proc/self/status to stderr (see --peaks). */
static void print_peaks(void)
{
    char line[256];
    unsigned long vm_peak = 0, vm_hwm = 0;
    FILE *status = fopen("/proc/self/status", "r");

    if (status == NULL) {
        fprintf(stderr, "peaks: /proc/self/status unreadable\n");
        return;
    }
    while (fgets(line, sizeof line, status) != NULL) {
        sscanf(line, "VmPeak: %lu", &vm_peak);
        sscanf(line, "VmHWM: %lu", &vm_hwm);
    }
    fclose(status);
    fprintf(stderr, "peaks: VmPeak %lu kB VmHWM %lu kB\n", vm_peak, vm_hwm);
}

int main(int argc, char **argv)
{
    const char *library = "libadudiffapi.so";
    const char *paths[3] = {NULL, NULL, NULL};
    int null_path[3] = {0, 0, 0};
    int npaths = 0;
    long repeat = 1;
    long iteration;
    int i;
    struct outcome out = {EXIT_USAGE, 0, 1, 0};
    int nnull = 0;
    int peaks = 0;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--repeat") == 0 && i + 1 < argc) {
            char *end;
            repeat = strtol(argv[++i], &end, 10);
            if (*end != '\0' || repeat < 1) {
                usage();
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "--peaks") == 0) {
            peaks = 1;
        } else if (strcmp(argv[i], "--library") == 0 && i + 1 < argc) {
            library = argv[++i];
        } else if (strcmp(argv[i], "--null") == 0 && i + 1 < argc) {
            const char *which = argv[++i];
            if (strcmp(which, "source") == 0) {
                null_path[0] = 1;
            } else if (strcmp(which, "delta") == 0) {
                null_path[1] = 1;
            } else if (strcmp(which, "target") == 0) {
                null_path[2] = 1;
            } else {
                usage();
                return EXIT_USAGE;
            }
        } else if (strncmp(argv[i], "--", 2) == 0) {
            usage();
            return EXIT_USAGE;
        } else if (npaths < 3) {
            paths[npaths++] = argv[i];
        } else {
            usage();
            return EXIT_USAGE;
        }
    }
    for (i = 0; i < 3; i++) {
        nnull += null_path[i];
    }
    if (npaths + nnull != 3) {
        usage();
        return EXIT_USAGE;
    }
    for (i = 0; i < 3; i++) {
        if (null_path[i]) {
            /* A NULL path takes the place of its positional argument. */
            int j;
            for (j = npaths; j > i; j--) {
                paths[j] = paths[j - 1];
            }
            paths[i] = NULL;
            npaths++;
        }
    }

    for (iteration = 1; iteration <= repeat; iteration++) {
        out = run_once(library, paths[0], paths[1], paths[2], (int)iteration);
        fflush(stdout);
        if (out.fatal) {
            break; /* the library itself is unusable: no point in repeating */
        }
    }
    if (peaks) {
        print_peaks();
    }
    return out.exit_status;
}
