/*
 * vessel_spank.c: a Slurm SPANK plugin that runs the tasks of a job step
 * (and a batch job's script) in a Vessel container.
 *
 *   srun --container-image=IMAGE [--container-mounts=SRC:DST[:ro],...]
 *        [--container-workdir=DIR] [--container-env=VAR[,VAR...]]
 *        [--container-writable] [--container-remap-root] PROGRAM ARGS...
 *
 * (also on sbatch and salloc; --singularity-image is an alias of
 * --container-image). In slurm_spank_task_init, which slurmstepd calls in
 * each task, as the user, just before it execs the task's program, the
 * plugin execs instead
 *
 *   VESSEL exec [--sharens] [--bind ...] [--cwd DIR] [--writable-tmpfs]
 *        [--fakeroot] IMAGE PROGRAM ARGS...
 *
 * with the task's environment, so the program runs in the container. With
 * --sharens (the default, for the tasks of a job step) all tasks of the
 * step on a node join one container: one user and mount namespace, one
 * image mount, shared /dev/shm (Open MPI's shared memory and single-copy
 * transports work between them); the runtime keys it by user, job step
 * (SLURM_JOB_ID, SLURM_STEP_ID), image and options, and the last task's
 * exit tears it down. A batch script is one task: it gets a container of
 * its own. Steps without --container-image are left alone.
 *
 * plugstack.conf arguments:
 *   vessel=/path/to/vessel   the runtime (default /usr/local/bin/vessel)
 *   binds=SRC[:DST[:ro|rw]],...   binds every container of the plugin gets
 *   sharens=yes|no           one container per node for a step's tasks
 *                            (default yes; no: one container per task)
 *
 * This file is C, not Rust, because Slurm finds a plugin by the data symbols
 * its SPANK_PLUGIN macro defines and by function names it looks up in the
 * shared object. It needs Slurm's headers only (Debian: libslurm-dev); the
 * functions it calls are resolved in the Slurm program that loads it.
 *
 * Build: cc -shared -fPIC -O2 -Wall -o vessel_spank.so vessel_spank.c
 * (or `make` in this directory).
 */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <slurm/slurm.h> /* SLURM_BATCH_SCRIPT */
#include <slurm/spank.h>

SPANK_PLUGIN(vessel, 1);

#define DEFAULT_VESSEL "/usr/local/bin/vessel"

/* The user's options (set by the callbacks, in srun/sbatch and again in
 * slurmstepd) and the plugin's arguments from plugstack.conf. */
static char *opt_image;
static char *opt_mounts;
static char *opt_workdir;
static char *opt_env;
static int opt_writable;
static int opt_remap_root;
static const char *cfg_vessel = DEFAULT_VESSEL;
static const char *cfg_binds;
static int cfg_sharens = 1;

enum {
	OPT_IMAGE = 1,
	OPT_MOUNTS,
	OPT_WORKDIR,
	OPT_ENV,
	OPT_WRITABLE,
	OPT_REMAP_ROOT,
};

static int option_cb(int val, const char *optarg, int remote);

static struct spank_option options[] = {
	{ "container-image", "IMAGE",
	  "Run the tasks (or the batch script) in a Vessel container of IMAGE "
	  "(SIF, SquashFS, sandbox directory or URI)",
	  1, OPT_IMAGE, option_cb },
	{ "singularity-image", "IMAGE", "Alias of --container-image",
	  1, OPT_IMAGE, option_cb },
	{ "container-mounts", "SRC:DST[:ro],...",
	  "Bind host paths into the container (comma-separated)",
	  1, OPT_MOUNTS, option_cb },
	{ "container-workdir", "DIR",
	  "Working directory in the container (absolute)",
	  1, OPT_WORKDIR, option_cb },
	{ "container-env", "VAR[,VAR...]",
	  "Pass these variables of the task's environment into the container, "
	  "over the image's own values",
	  1, OPT_ENV, option_cb },
	{ "container-writable", NULL,
	  "Make the container writable (changes kept in memory, discarded at "
	  "exit)",
	  0, OPT_WRITABLE, option_cb },
	{ "container-remap-root", NULL,
	  "Appear as root (uid 0) in the container, with no privilege on the "
	  "host",
	  0, OPT_REMAP_ROOT, option_cb },
	SPANK_OPTIONS_TABLE_END
};

/* "SRC[:DST[:ro|rw]],...": non-empty sources, absolute destinations, known
 * flags. Returns NULL when valid, or what is wrong (a static string). */
static const char *bad_binds(const char *spec)
{
	const char *entry = spec;

	if (*spec == '\0')
		return "empty";
	for (;;) {
		const char *end = strchr(entry, ',');
		size_t len = end ? (size_t)(end - entry) : strlen(entry);
		const char *c1 = memchr(entry, ':', len);
		const char *c2 = c1 ? memchr(c1 + 1, ':', len - (c1 + 1 - entry)) : NULL;

		if (len == 0)
			return "an empty entry (two commas, or one at an end)";
		if (c1 == entry)
			return "an entry without a source path (SRC:DST[:ro])";
		if (c1) {
			size_t dlen = (c2 ? c2 : entry + len) - (c1 + 1);
			if (dlen == 0 || c1[1] != '/')
				return "a destination that is not an absolute path";
		}
		if (c2) {
			size_t flen = entry + len - (c2 + 1);
			if (!((flen == 2 && !strncmp(c2 + 1, "ro", 2)) ||
			      (flen == 2 && !strncmp(c2 + 1, "rw", 2))))
				return "a flag other than ro or rw (SRC:DST[:ro])";
		}
		if (!end)
			return NULL;
		entry = end + 1;
	}
}

/* "VAR[,VAR...]" of shell variable names. */
static int valid_env_names(const char *spec)
{
	const char *p = spec;
	int at_start = 1;

	if (*spec == '\0')
		return 0;
	for (; *p; p++) {
		int alpha = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_';
		int digit = *p >= '0' && *p <= '9';
		if (*p == ',') {
			if (at_start)
				return 0;
			at_start = 1;
		} else if (alpha || (digit && !at_start)) {
			at_start = 0;
		} else {
			return 0;
		}
	}
	return !at_start;
}

static int set_string(char **slot, const char *value)
{
	char *copy = strdup(value);
	if (!copy) {
		slurm_error("vessel: out of memory");
		return -1;
	}
	free(*slot); /* NULL or our own earlier copy: free cannot fail */
	*slot = copy;
	return 0;
}

/* Called for each option the user gave, in srun/sbatch/salloc (remote = 0:
 * errors stop the command before anything is submitted) and again in
 * slurmstepd (remote = 1). A non-zero return makes Slurm refuse the option. */
static int option_cb(int val, const char *optarg, int remote)
{
	const char *why;

	(void)remote;
	switch (val) {
	case OPT_IMAGE:
		if (!optarg || *optarg == '\0') {
			slurm_error("vessel: --container-image needs an image (a path or a URI)");
			return -1;
		}
		if (*optarg == '-') {
			slurm_error("vessel: --container-image=%s: an image path may not start with '-'", optarg);
			return -1;
		}
		return set_string(&opt_image, optarg);
	case OPT_MOUNTS:
		if (!optarg || (why = bad_binds(optarg))) {
			slurm_error("vessel: --container-mounts=%s: %s; expected SRC:DST[:ro],...",
				    optarg ? optarg : "", optarg ? why : "empty");
			return -1;
		}
		return set_string(&opt_mounts, optarg);
	case OPT_WORKDIR:
		if (!optarg || optarg[0] != '/') {
			slurm_error("vessel: --container-workdir=%s: must be an absolute path in the container",
				    optarg ? optarg : "");
			return -1;
		}
		return set_string(&opt_workdir, optarg);
	case OPT_ENV:
		if (!optarg || !valid_env_names(optarg)) {
			slurm_error("vessel: --container-env=%s: expected variable names, VAR[,VAR...]",
				    optarg ? optarg : "");
			return -1;
		}
		return set_string(&opt_env, optarg);
	case OPT_WRITABLE:
		opt_writable = 1;
		return 0;
	case OPT_REMAP_ROOT:
		opt_remap_root = 1;
		return 0;
	}
	slurm_error("vessel: unknown option value %d", val);
	return -1;
}

/* Options are registered in srun (local), sbatch/salloc (allocator, where
 * spank_option_register is the only way) and slurmstepd (remote); the
 * plugstack.conf arguments are checked everywhere the plugin is loaded, so
 * that a wrong line fails loudly. */
int slurm_spank_init(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();
	int i;

	for (i = 0; i < ac; i++) {
		const char *why;
		if (!strncmp(av[i], "vessel=", 7)) {
			if (av[i][7] != '/') {
				slurm_error("vessel: plugstack.conf: %s: the runtime must be an absolute path", av[i]);
				return -1;
			}
			cfg_vessel = av[i] + 7;
		} else if (!strncmp(av[i], "binds=", 6)) {
			if ((why = bad_binds(av[i] + 6))) {
				slurm_error("vessel: plugstack.conf: %s: %s; expected binds=SRC:DST[:ro],...", av[i], why);
				return -1;
			}
			cfg_binds = av[i] + 6;
		} else if (!strcmp(av[i], "sharens=yes")) {
			cfg_sharens = 1;
		} else if (!strcmp(av[i], "sharens=no")) {
			cfg_sharens = 0;
		} else if (!strncmp(av[i], "sharens=", 8)) {
			slurm_error("vessel: plugstack.conf: %s: expected sharens=yes or sharens=no", av[i]);
			return -1;
		} else {
			slurm_error("vessel: plugstack.conf: unknown argument %s (known: vessel=PATH, binds=SRC:DST[:ro],..., sharens=yes|no)", av[i]);
			return -1;
		}
	}

	if (ctx != S_CTX_LOCAL && ctx != S_CTX_ALLOCATOR && ctx != S_CTX_REMOTE)
		return 0;
	for (i = 0; options[i].name; i++) {
		spank_err_t rc = spank_option_register(sp, &options[i]);
		if (rc != ESPANK_SUCCESS) {
			slurm_error("vessel: cannot register --%s: %s", options[i].name, spank_strerror(rc));
			return -1;
		}
	}
	return 0;
}

/* slurm_error in a task goes to the task's stderr (srun, or the batch job's
 * output file) and to slurmd's log; -1 then fails the task. */
#define task_fail(...)                                          \
	do {                                                    \
		slurm_error("vessel: " __VA_ARGS__);            \
		return -1;                                      \
	} while (0)

/* The value of NAME in ENV, or NULL. */
static const char *env_get(char **env, const char *name)
{
	size_t len = strlen(name);
	for (; env && *env; env++)
		if (!strncmp(*env, name, len) && (*env)[len] == '=')
			return *env + len + 1;
	return NULL;
}

/* In the task, as the user, after Slurm set up its environment, stdio and
 * working directory: exec Vessel, which runs the task's argv in the
 * container. What slurmstepd does in the task after SPANK's task_init is
 * skipped: TaskProlog, the creation of TMPDIR, PropagateResourceLimits, and
 * the task_init of plugins after this one in plugstack.conf. */
int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	int argc = 0, n = 0, i, nenv = 0;
	char **argv = NULL, **env = NULL, **nargv, **nenvp;
	uint32_t stepid = 0;
	spank_err_t rc;
	char *scriptdir = NULL;

	(void)ac;
	(void)av;
	if (!opt_image || !spank_remote(sp))
		return 0;

	if ((rc = spank_get_item(sp, S_JOB_ARGV, &argc, &argv)) != ESPANK_SUCCESS)
		task_fail("cannot read the task's command: %s", spank_strerror(rc));
	if ((rc = spank_get_item(sp, S_JOB_ENV, &env)) != ESPANK_SUCCESS)
		task_fail("cannot read the task's environment: %s", spank_strerror(rc));
	if ((rc = spank_get_item(sp, S_JOB_STEPID, &stepid)) != ESPANK_SUCCESS)
		task_fail("cannot read the job step id: %s", spank_strerror(rc));
	if (argc < 1 || !argv || !argv[0])
		task_fail("--container-image=%s: the task has no command to run", opt_image);

	/* A local image must be there and readable (URIs are Vessel's to
	 * resolve): say so here rather than leave it to Vessel's message. */
	if (!strstr(opt_image, "://") && access(opt_image, R_OK) != 0)
		task_fail("--container-image=%s: %s", opt_image, strerror(errno));
	if (access(cfg_vessel, X_OK) != 0)
		task_fail("the Vessel runtime %s (plugstack.conf vessel=): %s", cfg_vessel, strerror(errno));

	/* vessel exec + up to 11 flag words + image + argv + NULL. */
	nargv = calloc((size_t)argc + 16, sizeof(char *));
	if (!nargv)
		task_fail("out of memory");
	nargv[n++] = (char *)cfg_vessel;
	nargv[n++] = "exec";
	/* The tasks of a step share their node's container; the batch
	 * script, a step of one task, does not need to. */
	if (cfg_sharens && stepid != SLURM_BATCH_SCRIPT)
		nargv[n++] = "--sharens";
	if (cfg_binds) {
		nargv[n++] = "--bind";
		nargv[n++] = (char *)cfg_binds;
	}
	if (opt_mounts) {
		nargv[n++] = "--bind";
		nargv[n++] = opt_mounts;
	}
	/* A batch job's script lives in slurmd's spool directory, which the
	 * container would not see otherwise: bind its directory (the job's
	 * own, the user's) at the same path. */
	if (stepid == SLURM_BATCH_SCRIPT && argv[0][0] == '/') {
		char *slash;
		scriptdir = strdup(argv[0]);
		if (!scriptdir)
			task_fail("out of memory");
		slash = strrchr(scriptdir, '/');
		if (slash && slash != scriptdir) {
			*slash = '\0';
			nargv[n++] = "--bind";
			nargv[n++] = scriptdir;
		}
	}
	if (opt_workdir) {
		nargv[n++] = "--cwd";
		nargv[n++] = opt_workdir;
	}
	if (opt_writable)
		nargv[n++] = "--writable-tmpfs";
	if (opt_remap_root)
		nargv[n++] = "--fakeroot";
	nargv[n++] = opt_image;
	for (i = 0; i < argc; i++)
		nargv[n++] = argv[i];
	nargv[n] = NULL;

	/* The task's environment, plus APPTAINERENV_VAR=value for each
	 * --container-env VAR (Vessel sets VAR in the container over the
	 * image's value); earlier APPTAINERENV_VAR entries are left out. */
	while (env && env[nenv])
		nenv++;
	nenvp = calloc((size_t)nenv + 1 + (opt_env ? strlen(opt_env) / 2 + 1 : 0), sizeof(char *));
	if (!nenvp)
		task_fail("out of memory");
	n = 0;
	for (i = 0; i < nenv; i++) {
		int drop = 0;
		if (opt_env && !strncmp(env[i], "APPTAINERENV_", 13)) {
			size_t len = strcspn(env[i] + 13, "=");
			const char *p = opt_env;
			while (*p) {
				size_t plen = strcspn(p, ",");
				if (plen == len && !strncmp(p, env[i] + 13, len))
					drop = 1;
				p += plen + (p[plen] == ',');
			}
		}
		if (!drop)
			nenvp[n++] = env[i];
	}
	if (opt_env) {
		const char *p = opt_env;
		while (*p) {
			size_t plen = strcspn(p, ",");
			char name[256];
			const char *value;
			char *entry;
			if (plen >= sizeof(name))
				task_fail("--container-env: variable name too long");
			memcpy(name, p, plen);
			name[plen] = '\0';
			if (!(value = env_get(env, name)))
				task_fail("--container-env=%s: %s is not set in the task's environment", opt_env, name);
			if (asprintf(&entry, "APPTAINERENV_%s=%s", name, value) < 0)
				task_fail("out of memory");
			nenvp[n++] = entry;
			p += plen + (p[plen] == ',');
		}
	}
	nenvp[n] = NULL;

	execve(cfg_vessel, nargv, nenvp);
	task_fail("cannot run %s: %s", cfg_vessel, strerror(errno));
}
