"""LAMMPS exploration: the potforge pair style plugin, input generation and exploration runs."""
