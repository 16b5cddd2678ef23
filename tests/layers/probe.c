/*
 * One translation unit compiled with the include path of one part's
 * library: it must compile when that part may include PROBE_HEADER and
 * fail when it may not (tests/layers/CMakeLists.txt says which).
 */
#include PROBE_HEADER

int layer_probe(void);

int layer_probe(void)
{
	return 0;
}
