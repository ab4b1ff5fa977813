#include "admin/ctl.h"
int main(void) { return 0; }
