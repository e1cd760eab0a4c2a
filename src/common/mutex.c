/* scrm's mutex and condition variable; see mutex.h. */
#include "common/mutex.h"

#include "common/log.h"
#include "common/timeutil.h"

int scrm_cond_init(scrm_cond *cv)
{
    return scrm_cond_init_monotonic(&cv->c);
}

#ifndef NDEBUG
void scrm_mutex_assert_fail(const char *file, int line, const char *func)
{
    scrm_assert_fail("the calling thread holds the lock", file, line, func);
}
#endif
