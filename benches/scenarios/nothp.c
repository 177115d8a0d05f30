/* Runs a command with transparent huge pages off for its process (and its children):
 * prctl(PR_SET_THP_DISABLE, 1), then execv. For measuring a program as it runs on a machine
 * whose huge pages are off. Build: cc -O2 -o nothp benches/scenarios/nothp.c
 * Usage: nothp /full/path/to/program args... */
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: nothp /path/to/program [args...]\n");
        return 2;
    }
    if (prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0) {
        perror("prctl(PR_SET_THP_DISABLE)");
        return 2;
    }
    execv(argv[1], argv + 1);
    perror("execv");
    return 127;
}
