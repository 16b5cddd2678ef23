/*
 * `acme-edge selftest`: what a CA would see for each name, checked from
 * here before the CA tries (selftest.c).
 */
#ifndef EDGE_CMD_SELFTEST_H
#define EDGE_CMD_SELFTEST_H

/* argv[0] is "selftest". Exit status: 0 all passed, 1 a check failed, 2 usage. */
int selftest_main(int argc, char **argv);

#endif
