/* Run inside a container: loads a library the way a CUDA program finds its
 * driver (by soname, through LD_LIBRARY_PATH), calls one of its entry
 * points and prints what it returned:
 *   gpucheck libcuda.so.1 cuInit   ->  cuInit=4242 */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    void *lib;
    int (*call)(unsigned int);
    if (argc != 3) {
        fprintf(stderr, "usage: gpucheck SONAME FUNCTION\n");
        return 2;
    }
    lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) {
        fprintf(stderr, "gpucheck: %s\n", dlerror());
        return 1;
    }
    call = (int (*)(unsigned int))dlsym(lib, argv[2]);
    if (!call) {
        fprintf(stderr, "gpucheck: %s\n", dlerror());
        return 1;
    }
    printf("%s=%d\n", argv[2], call(0));
    return 0;
}
