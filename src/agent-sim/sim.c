/* conduix-agent-sim -- XXX placeholder until the agents issue lands. */
#include <stdio.h>
int main(void)
{
    fprintf(stderr, "conduix-agent-sim: not built yet\n");
    return 1;
}
