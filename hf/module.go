package hf

// Module names one of the seven linear layers of a transformer block.
type Module int

// The linear layers of a block, in Hugging Face's names (see Module.String).
const (
	QProj Module = iota
	KProj
	VProj
	OProj
	GateProj
	UpProj
	DownProj
	NumModules
)

var moduleNames = [NumModules]string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// String returns the module's Hugging Face name, e.g. "q_proj".
func (m Module) String() string { return moduleNames[m] }

// Path returns the module's path inside a block, e.g. "self_attn.q_proj".
func (m Module) Path() string {
	if m <= OProj {
		return "self_attn." + moduleNames[m]
	}
	return "mlp." + moduleNames[m]
}

// ParseModule returns the module with the given Hugging Face name.
func ParseModule(name string) (Module, bool) {
	for i, n := range moduleNames {
		if n == name {
			return Module(i), true
		}
	}
	return 0, false
}

// LinearShape returns the [out, in] shape of module mod's weight.
func (c *Config) LinearShape(mod Module) (out, in int) {
	qd, kvd := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	switch mod {
	case QProj:
		return qd, c.Hidden
	case KProj, VProj:
		return kvd, c.Hidden
	case OProj:
		return c.Hidden, qd
	case GateProj, UpProj:
		return c.Intermediate, c.Hidden
	}
	return c.Hidden, c.Intermediate
}

// LinearOut returns the output width of module mod.
func (c *Config) LinearOut(mod Module) int { out, _ := c.LinearShape(mod); return out }
