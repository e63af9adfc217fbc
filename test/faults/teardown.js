module.exports = require('./report').print;
