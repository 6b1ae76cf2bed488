/* A stand-in for a GPU driver's user-space libraries, for tests on
 * machines without GPUs: every library of the fake driver is this file
 * under another soname. The entry points return known values, so a test
 * can tell that the container loaded the host's (fake) driver. */

int cuInit(unsigned int flags) { (void)flags; return 4242; }
int cuDriverGetVersion(int *v) { if (v) *v = 12040; return 0; }
int cuDeviceGetName(char *name, int len, int dev) {
    const char fake[] = "Vessel Fake GPU";
    int i;
    (void)dev;
    for (i = 0; i < len - 1 && fake[i]; i++) name[i] = fake[i];
    if (len > 0) name[i] = 0;
    return 0;
}
int nvmlInit_v2(void) { return 4343; }
int hsa_init(void) { return 4444; }
