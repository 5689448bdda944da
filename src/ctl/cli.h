/* The `domus` verbs that talk to domusd; they follow xl's. */
#ifndef DOMUS_CLI_H
#define DOMUS_CLI_H

/* Runs verb argv[0] if it is one of ours; returns an exit status, or -1 for an unknown verb. */
int cli_run(int argc, char **argv);
extern const char cli_usage[];

#endif
