/* The `domus` verbs that talk to domusd; they follow xl's. */
#ifndef DOMUS_CLI_H
#define DOMUS_CLI_H

/* Runs verb argv[0] if it is one of ours; returns an exit status, or -1 for an unknown verb. */
int cli_run(int argc, char **argv);
extern const char cli_usage[];

/* Shared by the verbs' files (cli.c, cli_vfr.c). */
#include <jansson.h>
#include <stdbool.h>
#define EXIT_REFUSED 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3
struct client *cli_client(void);
bool cli_want_json(void);
/* Prints domusd's refusal; EXIT_REFUSED. */
int cli_refused(json_t *reply, int status);
/* PUTs body (taken) to path, or GETs it without one; prints the answer with print, or as JSON. */
int cli_request_and_print(const char *path, json_t *body, void (*print)(const json_t *reply));
/* domus sched-credit, vcpu-pin, vcpu-list (cli_sched.c) */
int cmd_sched_credit(int argc, char **argv);
int cmd_vcpu_pin(int argc, char **argv);
int cmd_vcpu_list(int argc, char **argv);
/* domus disk-qos ... (cli_disk.c) */
int cmd_disk_qos(int argc, char **argv);
int cmd_blk_sched(int argc, char **argv);
/* domus shm-create, shm-list, shm-destroy (cli_shm.c) */
int cmd_shm_create(int argc, char **argv);
int cmd_shm_list(int argc, char **argv);
int cmd_shm_destroy(int argc, char **argv);
/* domus vfr ... (cli_vfr.c) */
int cmd_vfr(int argc, char **argv);

#endif
