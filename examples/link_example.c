/*
 * link_example.c - links directly against libadudiffapi (no dlopen) using Microsoft's header
 * name, to prove that <legacy_adudiffapply.h>, the CMake target adudiffapi::adudiffapi and the
 * pkg-config file work. Behaves like a tiny applydiff:
 *
 *   link_example <source> <delta> <target>
 *
 * Prints "result: ok" or one line per error and "result: error <code>"; exit status 0 on success,
 * else 1.
 */
#include <legacy_adudiffapply.h>

#include <inttypes.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    adu_apply_handle session;
    uint32_t count;
    uint32_t i;
    uint32_t last = 0;
    int res;

    if (argc != 4) {
        fprintf(stderr, "usage: %s <source> <delta> <target>\n", argv[0]);
        return 2;
    }
    session = adu_diff_apply_create_session();
    if (session == NULL) {
        printf("result: failed create_session\n");
        return 2;
    }
    (void)adu_diff_apply_set_log_path(session, NULL);
    res = adu_diff_apply(session, argv[1], argv[2], argv[3]);
    if (res == 0) {
        printf("result: ok\n");
    } else {
        count = adu_diff_apply_get_error_count(session);
        for (i = 0; i < count; i++) {
            const char *text = adu_diff_apply_get_error_text(session, i);
            last = adu_diff_apply_get_error_code(session, i);
            printf("error[%" PRIu32 "]: code=%" PRIu32 " text=%s\n", i, last, text ? text : "(null)");
        }
        printf("result: error %" PRIu32 "\n", count > 0 ? last : (uint32_t)res);
    }
    adu_diff_apply_close_session(session);
    return res == 0 ? 0 : 1;
}
