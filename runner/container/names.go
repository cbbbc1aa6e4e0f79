package container

import (
	"math/rand/v2"
	"strconv"
)

// Generated container names are Docker's: adjective_surname (of a scientist or engineer),
// with a digit appended on retries after a collision.

var nameLeft = [...]string{
	"admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome",
	"beautiful", "blissful", "bold", "boring", "brave", "busy", "charming", "clever",
	"compassionate", "competent", "confident", "cool", "cranky", "crazy", "dazzling",
	"determined", "distracted", "dreamy", "eager", "ecstatic", "elastic", "elated", "elegant",
	"eloquent", "epic", "exciting", "fervent", "festive", "flamboyant", "focused", "friendly",
	"frosty", "funny", "gallant", "gifted", "goofy", "gracious", "great", "happy", "hardcore",
	"heuristic", "hopeful", "hungry", "infallible", "inspiring", "intelligent", "interesting",
	"jolly", "jovial", "keen", "kind", "laughing", "loving", "lucid", "magical", "modest",
	"musing", "mystifying", "naughty", "nervous", "nice", "nifty", "nostalgic", "objective",
	"optimistic", "peaceful", "pedantic", "pensive", "practical", "priceless", "quirky",
	"quizzical", "recursing", "relaxed", "reverent", "romantic", "sad", "serene", "sharp",
	"silly", "sleepy", "stoic", "strange", "stupefied", "suspicious", "sweet", "tender",
	"thirsty", "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous",
	"wizardly", "wonderful", "xenodochial", "youthful", "zealous", "zen",
}

var nameRight = [...]string{
	"agnesi", "albattani", "allen", "almeida", "archimedes", "ardinghelli", "babbage",
	"banach", "bardeen", "bartik", "bassi", "bell", "bhabha", "blackwell", "bohr", "booth",
	"borg", "bose", "brahmagupta", "brattain", "brown", "carson", "cerf", "chandrasekhar",
	"chaplygin", "clarke", "cohen", "curie", "darwin", "davinci", "dijkstra", "driscoll",
	"dubinsky", "easley", "einstein", "elbakyan", "elion", "engelbart", "euclid", "euler",
	"faraday", "fermat", "fermi", "feynman", "franklin", "galileo", "gates", "goldberg",
	"goldstine", "goodall", "gould", "hamilton", "haslett", "hawking", "heisenberg",
	"hellman", "hermann", "hodgkin", "hoover", "hopper", "hugle", "hypatia", "jackson",
	"jang", "jennings", "jepsen", "johnson", "joliot", "kalam", "kapitsa", "keller",
	"kepler", "khorana", "kilby", "kirch", "knuth", "kowalevski", "lalande", "lamarr",
	"lamport", "leakey", "leavitt", "lehmann", "liskov", "lovelace", "lumiere", "mahavira",
	"margulis", "matsumoto", "maxwell", "mayer", "mccarthy", "mcclintock", "meitner",
	"mendel", "merkle", "mirzakhani", "montalcini", "moore", "morse", "napier", "nash",
	"neumann", "newton", "nobel", "noether", "northcutt", "noyce", "panini", "pascal",
	"pasteur", "payne", "perlman", "pike", "poincare", "ptolemy", "raman", "ramanujan",
	"rhodes", "ride", "ritchie", "robinson", "roentgen", "rosalind", "rubin", "saha",
	"sammet", "shannon", "shaw", "shirley", "shockley", "sinoussi", "snyder", "spence",
	"stonebraker", "sutherland", "swanson", "swartz", "tesla", "thompson", "torvalds",
	"turing", "varahamihira", "villani", "volhard", "wescoff", "wilbur", "wiles", "williams",
	"wilson", "wing", "wozniak", "wright", "wu", "yalow", "yonath",
}

// randomName returns a generated name; retry > 0 appends a digit.
func randomName(retry int) string {
	for {
		name := nameLeft[rand.IntN(len(nameLeft))] + "_" + nameRight[rand.IntN(len(nameRight))]
		if name == "boring_wozniak" { // Steve Wozniak is not boring (Docker's rule)
			continue
		}
		if retry > 0 {
			name += strconv.Itoa(rand.IntN(10))
		}
		return name
	}
}
